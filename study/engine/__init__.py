"""The experiment engine, one subpackage per stage of the data flow:

    studies/    study file -> validated, expanded runs (`RunSpec`s, keyed)
    training/   a run -> a record, inside a worker (model, fit, probes, tasks)
    results/    records -> the SQLite store; claims and their statistics
    execution/  plan -> executors (local processes, Ray) -> store, with progress

Data flows one way, as plain values (dataclasses, dicts, DataFrames); a stage imports only the
stages before it.
"""
