"""Orchestration: commands that run several stages in a row (record -> train -> evaluate).

`demo` is `make demo`'s main job; `protocol` is the single-task visuomotor protocol grid. They stand on every
stage below them and nothing imports them but the command line.
"""
