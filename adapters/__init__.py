"""Adapters: settings, persistence wiring, the Telegram bot, the CLI. Nothing imports them back."""
