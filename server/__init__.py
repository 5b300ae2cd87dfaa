"""The aiohttp signalling server: auth, queue, pairing, relay, TURN credentials, store, audit."""
