import TensorCore

#if canImport(Glibc)
import Glibc
#endif

/// Seconds on a monotonic clock.
package func seconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
