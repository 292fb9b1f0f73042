"""One aiogram router per feature of the bot; `all_routers()` in the order they are tried."""
