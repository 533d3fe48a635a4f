#!/usr/bin/env python3
"""Lists Rust functions longer than a limit (default 70 lines), from `fn` to its closing brace.
Usage: scripts/long_functions.py [--max N] FILE..."""
import re, sys

def functions(path):
    lines = open(path).read().split('\n')
    i = 0
    while i < len(lines):
        m = re.match(r'\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)', lines[i])
        if not m:
            i += 1
            continue
        depth, j, opened = 0, i, False
        while j < len(lines):
            depth += lines[j].count('{') - lines[j].count('}')
            opened = opened or '{' in lines[j]
            if (opened and depth <= 0) or (not opened and lines[j].rstrip().endswith(';')):
                break
            j += 1
        yield m.group(6), i + 1, j - i + 1
        i += 1

args = sys.argv[1:]
limit = 70
if args[:1] == ['--max']:
    limit, args = int(args[1]), args[2:]
found = False
for path in args:
    for name, line, length in functions(path):
        if length > limit:
            found = True
            print(f'{path}:{line} {name} {length} lines')
sys.exit(1 if found else 0)
