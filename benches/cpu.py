"""CPU seconds (user + system) for the Python benches that run peers beside Lectern."""
import resource


def children_cpu():
    """Of this process's finished, waited-for child processes (and theirs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu():
    """Of this process (peers that run in it, such as Kreuzberg)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
