"""``leuksearch serve --study S``: a web page of the study that updates as trials land."""

from __future__ import annotations

import argparse

from search.serve import serve


def main(args: argparse.Namespace) -> int:
    serve(args.db, args.study, args.host, args.port)
    return 0
