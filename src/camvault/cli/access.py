"""Operator commands for access control — ``users``, ``groups``, ``grants``, ``tokens`` —
and ``serve`` (the HTTP API alone).

They run on the owner's connection (the service policies let it see and change
everything); the API itself runs as the unprivileged ``camvault_api`` role. Every change
commits together with its audit row, the actor being ``os:<login>``.

Users and groups are named by name (``--user NAME``, positional ``NAME``) or by id
(``--user-id ID``, ``--id ID``) — a name is never read as an id.
"""

from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from camvault.cli import EXIT_OK, emit, json_flag, os_actor, parse_time
from camvault.errors import InputError
from camvault.keys import validate_camera_id

if TYPE_CHECKING:
    from camvault.app import App
    from camvault.catalog.access import AccessCatalog, GrantRecord
    from camvault.config import Settings


# acl.Permission's labels, spelled out so that register() need not import camvault.acl
# (and `secrets`), which a camera script's `camvault ingest` would pay for at start-up
PERMISSIONS = ("view", "export", "admin")


def _id(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n < 2**63:
        raise argparse.ArgumentTypeError(f"{value!r} is not an id (a positive integer)")
    return n


def _ref_options(p: Any, kind: str) -> None:
    """``--user NAME`` / ``--user-id ID`` (``p`` may be a mutually exclusive group)."""
    p.add_argument(f"--{kind}", metavar="NAME", help=f"{kind} by name")
    p.add_argument(f"--{kind}-id", type=_id, metavar="ID", help=f"{kind} by id")


def _ref(args: argparse.Namespace, kind: str) -> str | int | None:
    ident: int | None = getattr(args, f"{kind}_id")
    return ident if ident is not None else getattr(args, kind)


def register(sub: Any) -> None:
    users = sub.add_parser("users", help="API users").add_subparsers(
        dest="users_command", required=True, metavar="ACTION"
    )
    p = users.add_parser("add", help="add a user")
    p.add_argument("name")
    p.add_argument("--admin", action="store_true", help="sees everything, manages access")
    json_flag(p)
    p.set_defaults(handler=cmd_users_add)
    p = users.add_parser("list", help="list users")
    json_flag(p)
    p.set_defaults(handler=cmd_users_list)
    for action in ("disable", "enable"):
        p = users.add_parser(action, help=f"{action} a user (a disabled user sees nothing)")
        p.add_argument("name", nargs="?", help="the user's name (or --id)")
        p.add_argument("--id", type=_id, help="the user's id")
        json_flag(p)
        p.set_defaults(handler=cmd_users_toggle, disabled=action == "disable")
    p = users.add_parser(
        "passwd", help="set a user's web sign-in password (from the terminal, or stdin)"
    )
    p.add_argument("name")
    p.set_defaults(handler=cmd_users_passwd)

    groups = sub.add_parser("groups", help="groups of users").add_subparsers(
        dest="groups_command", required=True, metavar="ACTION"
    )
    p = groups.add_parser("add", help="add a group")
    p.add_argument("name")
    json_flag(p)
    p.set_defaults(handler=cmd_groups_add)
    p = groups.add_parser("list", help="list groups and their members")
    json_flag(p)
    p.set_defaults(handler=cmd_groups_list)
    for action, handler in (("add-member", cmd_groups_add_member), ("remove-member", None)):
        p = groups.add_parser(
            action,
            help=f"{action.replace('-', ' ')} of a group",
            usage=f"camvault groups {action} (GROUP | --group-id ID) (USER | --user-id ID)",
        )
        p.add_argument("names", nargs="*", metavar="GROUP USER", help="names")
        p.add_argument("--group-id", type=_id, metavar="ID", help="the group by id")
        p.add_argument("--user-id", type=_id, metavar="ID", help="the user by id")
        p.set_defaults(handler=handler or cmd_groups_remove_member)

    grants = sub.add_parser("grants", help="who may see which camera").add_subparsers(
        dest="grants_command", required=True, metavar="ACTION"
    )
    p = grants.add_parser("add", help="grant a user or group a permission on a camera")
    who = p.add_mutually_exclusive_group(required=True)
    _ref_options(who, "user")
    _ref_options(who, "group")
    p.add_argument("--camera", required=True)
    p.add_argument("--permission", default="view", choices=PERMISSIONS)
    p.add_argument("--from", dest="window_start", type=parse_time, help="footage window start")
    p.add_argument("--to", dest="window_end", type=parse_time, help="footage window end")
    p.add_argument("--expires", type=parse_time, help="the grant ends at this time")
    json_flag(p)
    p.set_defaults(handler=cmd_grants_add)
    p = grants.add_parser("list", help="list grants")
    p.add_argument("--camera")
    _ref_options(p.add_mutually_exclusive_group(), "user")
    _ref_options(p.add_mutually_exclusive_group(), "group")
    p.add_argument("--all", action="store_true", help="include revoked grants")
    json_flag(p)
    p.set_defaults(handler=cmd_grants_list)
    p = grants.add_parser("revoke", help="revoke a grant by id")
    p.add_argument("id", type=int)
    p.set_defaults(handler=cmd_grants_revoke)

    tokens = sub.add_parser("tokens", help="API bearer tokens").add_subparsers(
        dest="tokens_command", required=True, metavar="ACTION"
    )
    p = tokens.add_parser("create", help="create a token (printed once, on the last line)")
    _ref_options(p.add_mutually_exclusive_group(required=True), "user")
    p.add_argument("--expires", type=parse_time)
    p.add_argument("--name", default="", help="a label, e.g. the client it is for")
    json_flag(p)
    p.set_defaults(handler=cmd_tokens_create)
    p = tokens.add_parser("list", help="list tokens (hints only, never values)")
    _ref_options(p.add_mutually_exclusive_group(), "user")
    json_flag(p)
    p.set_defaults(handler=cmd_tokens_list)
    p = tokens.add_parser("revoke", help="revoke a token by id")
    p.add_argument("id", type=int)
    p.set_defaults(handler=cmd_tokens_revoke)

    p = sub.add_parser("serve", help="serve the HTTP API (and the web page at /)")
    p.add_argument("--host", help="default: [api] host")
    p.add_argument("--port", type=int, help="default: [api] port")
    p.set_defaults(handler=cmd_serve)


def _access(app: App) -> AccessCatalog:
    from camvault.catalog.access import AccessCatalog

    return AccessCatalog(app.connector, actor=os_actor())


def cmd_users_add(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.catalog.access import AuditEntry

    with App.open(settings) as app, _access(app).atomic() as tx:
        user = tx.add_user(args.name, is_admin=args.admin)
        tx.audit(AuditEntry("user.add", detail={"user": user.name, "is_admin": user.is_admin}))
    emit(args, asdict(user), lambda: print(f"user {user.name} added (id {user.id})"))
    return EXIT_OK


def cmd_users_list(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App

    with App.open(settings) as app:
        users = _access(app).list_users()

    def human() -> None:
        print(f"{'ID':>6} {'NAME':<32} ADMIN DISABLED")
        for u in users:
            print(
                f"{u.id:>6} {u.name:<32} {'yes' if u.is_admin else 'no':<5} "
                f"{'yes' if u.disabled else 'no'}"
            )

    emit(args, [asdict(u) for u in users], human)
    return EXIT_OK


def cmd_users_toggle(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.catalog.access import AuditEntry

    if (args.name is None) == (args.id is None):
        raise InputError("give the user as NAME or --id ID (one of them)")
    ref: str | int = args.name if args.id is None else args.id
    with App.open(settings) as app, _access(app).atomic() as tx:
        user = tx.update_user(tx.get_user(ref).id, disabled=args.disabled)
        tx.audit(AuditEntry("user.update", detail={"user": user.name, "disabled": user.disabled}))
    state = "disabled" if user.disabled else "enabled"
    emit(args, asdict(user), lambda: print(f"user {user.name} {state}"))
    return EXIT_OK


def cmd_users_passwd(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.catalog.access import AuditEntry
    from camvault.cli.passwd import read_password
    from camvault.sessions import hash_password, store_password

    hashed = hash_password(read_password())
    with App.open(settings) as app, _access(app).atomic() as tx:
        user = tx.get_user(args.name)
        tx.within(lambda s: store_password(s, user.id, hashed))
        tx.audit(AuditEntry("user.passwd", detail={"user": user.name}))
    print(f"password of {user.name} set; their web sessions ended")
    return EXIT_OK


def cmd_groups_add(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.catalog.access import AuditEntry

    with App.open(settings) as app, _access(app).atomic() as tx:
        group = tx.add_group(args.name)
        tx.audit(AuditEntry("group.add", detail={"group": group.name}))
    emit(args, asdict(group), lambda: print(f"group {group.name} added (id {group.id})"))
    return EXIT_OK


def cmd_groups_list(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App

    with App.open(settings) as app:
        groups = _access(app).list_groups()

    def human() -> None:
        for g in groups:
            print(f"{g.id:>6} {g.name:<32} {', '.join(g.members) or '-'}")

    emit(args, [asdict(g) for g in groups], human)
    return EXIT_OK


def _member_refs(args: argparse.Namespace) -> tuple[str | int, str | int]:
    """(group, user) from ``GROUP USER``, with ``--group-id``/``--user-id`` standing in for
    either name."""
    names = list(args.names)
    group = args.group_id if args.group_id is not None else (names.pop(0) if names else None)
    user = args.user_id if args.user_id is not None else (names.pop(0) if names else None)
    if group is None or user is None or names:
        raise InputError(
            "give the group (GROUP or --group-id ID) and the user (USER or --user-id ID)"
        )
    return group, user


def cmd_groups_add_member(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.catalog.access import AuditEntry

    group_ref, user_ref = _member_refs(args)
    with App.open(settings) as app, _access(app).atomic() as tx:
        group, user = tx.add_member(group_ref, user_ref)
        tx.audit(AuditEntry("group.add_member", detail={"group": group.name, "user": user.name}))
    print(f"user {user.name} is a member of group {group.name}")
    return EXIT_OK


def cmd_groups_remove_member(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.catalog.access import AuditEntry

    group_ref, user_ref = _member_refs(args)
    with App.open(settings) as app, _access(app).atomic() as tx:
        group, user = tx.remove_member(group_ref, user_ref)
        detail = {"group": group.name, "user": user.name}
        tx.audit(AuditEntry("group.remove_member", detail=detail))
    print(f"user {user.name} removed from group {group.name}")
    return EXIT_OK


def _describe(g: GrantRecord) -> str:
    gr = g.grant
    who = f"user {g.user_name}" if gr.user_id is not None else f"group {g.group_name}"
    window = (
        f" footage {gr.window_start:%Y-%m-%d %H:%M:%S} to {gr.window_end:%Y-%m-%d %H:%M:%S} UTC"
        if gr.window_start and gr.window_end
        else ""
    )
    expires = f" expires {gr.expires_at:%Y-%m-%d %H:%M:%S} UTC" if gr.expires_at else ""
    revoked = " REVOKED" if gr.revoked_at else ""
    return f"{gr.id:>6} {who}: {gr.permission.label} on {gr.camera_id}{window}{expires}{revoked}"


def cmd_grants_add(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.acl import Permission, validate_window
    from camvault.app import App
    from camvault.catalog.access import AuditEntry

    validate_camera_id(args.camera)
    validate_window(args.window_start, args.window_end)
    with App.open(settings) as app, _access(app).atomic() as tx:
        grant = tx.add_grant(
            camera_id=args.camera,
            permission=Permission.parse(args.permission),
            user=_ref(args, "user"),
            group=_ref(args, "group"),
            window_start=args.window_start,
            window_end=args.window_end,
            expires_at=args.expires,
        )
        tx.audit(AuditEntry("grant.add", camera_id=grant.grant.camera_id, detail=grant.as_dict()))
    emit(args, grant.as_dict(), lambda: print("granted: " + _describe(grant).strip()))
    return EXIT_OK


def cmd_grants_list(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App

    with App.open(settings) as app:
        grants = _access(app).list_grants(
            camera_id=args.camera,
            user=_ref(args, "user"),
            group=_ref(args, "group"),
            include_revoked=args.all,
        )

    def human() -> None:
        for g in grants:
            print(_describe(g))
        print(f"{len(grants)} grant(s)")

    emit(args, [g.as_dict() for g in grants], human)
    return EXIT_OK


def cmd_grants_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.catalog.access import AuditEntry

    with App.open(settings) as app, _access(app).atomic() as tx:
        tx.revoke_grant(args.id)
        tx.audit(AuditEntry("grant.revoke", detail={"grant_id": args.id}))
    print(f"grant {args.id} revoked")
    return EXIT_OK


def cmd_tokens_create(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.catalog.access import AuditEntry

    user = _ref(args, "user")
    assert user is not None  # a required option group
    with App.open(settings) as app, _access(app).atomic() as tx:
        token, info = tx.create_token(user, name=args.name, expires_at=args.expires)
        tx.audit(AuditEntry("token.create", detail={"token_id": info.id, "user": info.user_name}))
    if args.json:
        emit(args, {**asdict(info), "token": token}, lambda: None)
        return EXIT_OK
    expires = f", expires {info.expires_at:%Y-%m-%d %H:%M:%S} UTC" if info.expires_at else ""
    print(f"token {info.id} for user {info.user_name}{expires}; shown once, store it now:")
    print(token)  # alone on the last line: scripts take `tail -n1`
    return EXIT_OK


def cmd_tokens_list(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App

    with App.open(settings) as app:
        tokens = _access(app).list_tokens(_ref(args, "user"))

    def human() -> None:
        for t in tokens:
            state = "revoked" if t.revoked_at else "active"
            exp = f" expires {t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else ""
            print(f"{t.id:>6} {t.user_name:<24} {t.hint}…  {state}{exp} {t.name}")

    emit(args, [asdict(t) for t in tokens], human)
    return EXIT_OK


def cmd_tokens_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.app import App
    from camvault.catalog.access import AuditEntry

    with App.open(settings) as app, _access(app).atomic() as tx:
        tx.revoke_token(args.id)
        tx.audit(AuditEntry("token.revoke", detail={"token_id": args.id}))
    print(f"token {args.id} revoked")
    return EXIT_OK


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from camvault.api.server import start_api
    from camvault.app import App
    from camvault.cli.archive import _stop_on_signals

    stop = threading.Event()
    _stop_on_signals(stop)
    with App.open(settings) as app:
        server, shutdown = start_api(
            app,
            host=args.host or settings.api.host,
            port=settings.api.port if args.port is None else args.port,
        )
        try:
            print(
                f"camvault API on {server.url} (OpenAPI {server.url}/openapi.json); Ctrl-C to stop",
                flush=True,
            )
            stop.wait()
        finally:
            shutdown()
    print("stopped", file=sys.stderr)
    return EXIT_OK
