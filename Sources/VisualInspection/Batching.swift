import TensorCore

#if canImport(Glibc)
import Glibc
#endif

/// `[H, W, C]` tensors stacked into one `[N, H, W, C]` batch.
func stackImages(_ images: [Tensor]) -> Tensor {
    let shape = images[0].shape, each = images[0].count
    return Tensor(uninitializedShape: [images.count] + shape) { out in
        for (i, image) in images.enumerated() {
            precondition(image.shape == shape, "stackImages: shapes \(image.shape) and \(shape) differ")
            image.withUnsafeBufferPointer { (out.baseAddress! + i * each).update(from: $0.baseAddress!, count: each) }
        }
    }
}

/// Seconds on a monotonic clock.
func seconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
