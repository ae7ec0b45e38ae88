import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "⟦S:prefixed/django-insecure-⟧"
DEBUG = False
ALLOWED_HOSTS = ["orders.example.com"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "orders",
        "USER": "orders",
        "PASSWORD": os.environ["⟦L=ORDERS_DB_PASSWORD⟧"],
        "HOST": "db.internal",
    }
}

OPENAI_API_KEY = os.getenv("OPENAI_API_KEY", "⟦L=sk-your-key-here⟧")
ANTHROPIC_API_KEY = "⟦S:anthropic⟧"
STATIC_VERSION = "⟦L:hex/12⟧"
CSRF_COOKIE_NAME = "⟦L=orders_csrftoken⟧"
EMAIL_HOST_PASSWORD = "⟦S:password⟧"


def slack_client(token: str = "⟦L=xoxb-your-token⟧"):
    return token
