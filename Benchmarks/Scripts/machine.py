"""Facts about the machine a benchmark runs on, printed next to every result."""
import platform


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (platform.processor() where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
