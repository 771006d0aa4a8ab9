"""Plan -> executors -> store: which runs are pending, where they run, each record stored.

    runner        plan the pending runs, execute them, store each record as it comes
    executors     in this process, or in local worker processes
    ray_executor  as tasks on a Ray cluster
"""
