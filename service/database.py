"""Opens the database as every command needs it: migrated, keeping secrets sealed, and with what
was stored in clear or under an older key sealed again under the newest."""

from __future__ import annotations

from service.encryption import cipher_for, seal_stored_secrets
from service.settings import Settings
from storage import Store, open_store


async def open_database(settings: Settings) -> Store:
    cipher = cipher_for(settings)
    store = await open_store(settings.database_url, cipher)
    try:
        await store.migrate()
        await seal_stored_secrets(store, cipher)
    except BaseException:
        await store.close()
        raise
    return store
