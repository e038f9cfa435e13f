"""Jobs that write row datasets: declarations (:mod:`.declare`), the file layout built in memory
(:mod:`.image`), each rank's ``pwrite`` of its shards (:mod:`.rows`) and the passes a writing job
runs (:mod:`.phases`). See docs/writing.md."""

from hpcdist.sinks.declare import Output

__all__ = ["Output"]
