"""``dlbench env``: the environment a result would record."""

from __future__ import annotations

import argparse
import json

from dlbench.cli.args import EXIT_OK, make_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    env = sub.add_parser("env", help="show the environment a result would record")
    env.add_argument("--json", action="store_true", help="print JSON")


def command(args: argparse.Namespace) -> int:
    from dlbench.execution import environment

    env = environment.capture()
    if args.json:
        print(json.dumps(env, indent=2))
        return EXIT_OK
    from rich.table import Table

    table = Table("what", "value", show_header=False)
    cpu = env["cpu"]
    table.add_row("OS", env["os"]["platform"])
    table.add_row(
        "CPU",
        f"{cpu['model']} ({cpu['physical_cores']} physical / {cpu['logical_cores']} logical cores, "
        f"{cpu['usable_cores']} usable; {' '.join(cpu['flags'])})",
    )
    if env["memory"]:
        table.add_row("Memory", f"{env['memory']['total_bytes'] / 2**30:.1f} GiB")
    table.add_row("Python", f"{env['python']['version']} ({env['python']['executable']})")
    table.add_row("BLAS", f"{env['blas'].get('name')} {env['blas'].get('version')}")
    for gpu in env["gpus"] or []:
        table.add_row(
            f"GPU {gpu['index']}",
            f"{gpu['name']}, {gpu['memory_total_mib']:.0f} MiB, driver {gpu['driver']}",
        )
    if not env["gpus"]:
        table.add_row("GPU", "none found")
    for name, version in env["packages"].items():
        table.add_row(name, version)
    for name, value in env["env"].items():
        table.add_row(f"${name}", value)
    table.add_row(
        "dlbench", f"{env['dlbench']['version']} (git {env['dlbench']['git_commit'] or 'n/a'})"
    )
    make_console().print(table)
    return EXIT_OK
