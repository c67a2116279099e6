"""The batch scoring engine: a model over a folder of files or the rows of a table, in mini-batches on worker
processes (v1's ParallelRunStep contract: ``init()`` once per worker, ``run(mini_batch)`` per mini-batch)."""
