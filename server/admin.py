"""Administration of carts and specialists (`telecart admin ...`), audited like everything else."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sqlite3

from telecart.config import ServerConfig
from telecart.server.credentials import hash_password, new_token, token_hash
from telecart.server.store import Store

MIN_PASSWORD_LENGTH = 10


class AdminError(Exception):
    """An admin action that cannot be done; the message says why."""


def admin_actor() -> str:
    try:
        return f"admin:{getpass.getuser()}"
    except (KeyError, OSError):
        return "admin:unknown"


async def run(config: ServerConfig, args: argparse.Namespace, password: str | None) -> str:
    store = await Store.open(config.database_path)
    try:
        return await _dispatch(store, config, args, password)
    finally:
        await store.close()


async def _dispatch(
    store: Store, config: ServerConfig, args: argparse.Namespace, password: str | None
) -> str:
    if args.action == "add-cart":
        token = new_token()
        try:
            cart = await store.add_cart(args.name, args.clinic, token_hash(token))
        except sqlite3.IntegrityError:
            raise AdminError(f"A cart named {args.name!r} already exists.") from None
        await store.audit(admin_actor(), "cart_added", cart=cart.id, name=cart.name)
        return (
            f"Cart {cart.name!r} ({cart.clinic}) added.\n"
            f"Token (shown once; put it in the cart's config as agent.token):\n{token}"
        )
    if args.action == "revoke-cart":
        if not await store.revoke_cart(args.name):
            raise AdminError(f"No cart named {args.name!r}.")
        await store.audit(admin_actor(), "cart_revoked", name=args.name)
        return f"Cart {args.name!r} revoked: its token is refused from now on."
    if args.action == "add-specialist":
        unknown = [s for s in args.specialty if s not in config.specialties]
        if unknown:
            raise AdminError(
                f"Unknown specialty {', '.join(unknown)}; choose from "
                + ", ".join(config.specialties)
            )
        if password is None or len(password) < MIN_PASSWORD_LENGTH:
            raise AdminError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
        username = args.username.strip().lower()
        try:
            spec = await store.add_specialist(
                username,
                args.name or args.username,
                await asyncio.to_thread(hash_password, password),
                tuple(args.specialty),
            )
        except sqlite3.IntegrityError:
            raise AdminError(f"A specialist named {username!r} already exists.") from None
        await store.audit(admin_actor(), "specialist_added", specialist=spec.id, username=username)
        return f"Specialist {username!r} added ({', '.join(spec.specialties)})."
    lines = ["Carts:"]
    for cart in await store.list_carts():
        state = "revoked" if cart.revoked else "active"
        lines.append(f"  {cart.name:<24} {cart.clinic:<32} {state}")
    lines.append("Specialists:")
    for spec in await store.list_specialists():
        lines.append(f"  {spec.username:<24} {spec.display_name:<32} {', '.join(spec.specialties)}")
    return "\n".join(lines)
