"""The Telegram adapter: Diana's bot on aiogram 3.

`bot.build_dispatcher` wires one router per feature (`routers/`), the middleware that hands each
handler a `Gateway` (the coordinator, the read-model queries and the origin of the update in
hand: no globals), the callback-data factories (`callbacks`) and the Spanish catalogue
(`texts`). `runner.BotRunner` runs it by long polling (`dianabot run`).
"""
