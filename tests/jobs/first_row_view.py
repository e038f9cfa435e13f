"""A map that returns a view of the reused shard buffer (``shard[0]``): the sum of each shard's first row."""


def map(shard, ctx):
    return shard[0]          # a view: without hpcdist's copy, the next read would change it


def combine(a, b):
    return a + b


def finalize(partial, ctx):
    return {"sum": partial}
