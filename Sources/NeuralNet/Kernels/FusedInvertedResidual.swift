// An inverted-residual block (1x1 expansion, depthwise kxk, 1x1 projection, optional
// identity shortcut) run band by band, so that the expanded activations never leave the
// cache.
//
// Why: in EfficientNet-Lite0's early blocks the expansion writes 4-6x the block's input
// (112 x 112 x 96 floats = 4.8 MB in the second block) to memory, the depthwise reads it
// back and writes its own output, and the projection reads that again. The arithmetic per
// byte is low there (16-24 input channels), so the three kernels run at the speed of memory.
// Here one image is processed in bands of output rows: the expansion computes only the
// input rows the band's depthwise taps need, into a buffer of a few rows (< 256 KiB, L2),
// the depthwise writes the band's rows into a second small buffer, and the projection
// writes the final rows (adding the shortcut). The rows the next band shares with this
// one (the kernel's overlap) are moved to the front of the buffer instead of recomputed.
//
// The same kernels do the arithmetic (``directConvForward`` for the 1x1 convolutions, the
// depthwise kernel on a band described as a convolution with adjusted padding), in the same
// order per element, so the result equals the layer-by-layer path bit for bit (tested).
import TensorCore

/// Whether ``fusedInvertedResidual(_:expand:depthwise:project:identity:pool:)`` applies to
/// these convolutions and pays off: 1x1 expansion, depthwise with one group per channel,
/// 1x1 projection, and an expanded map larger than the L2 cache.
func fusesAsInvertedResidual(_ convolutions: [FusedConv], input shape: [Int]) -> Bool {
    guard convolutions.count == 3, shape.count == 4 else { return false }
    let (e, d, p) = (convolutions[0], convolutions[1], convolutions[2])
    func pointwise(_ c: FusedConv) -> Bool {
        c.groups == 1 && c.weight.shape[0] == 1 && c.weight.shape[1] == 1 && c.stride == (1, 1)
            && c.dilation == (1, 1) && c.padding.resolve(height: 1, width: 1, kernel: (1, 1), stride: (1, 1)) == (0, 0, 0, 0)
    }
    guard pointwise(e), pointwise(p), d.groups == e.outChannels, d.outChannels == e.outChannels,
          d.weight.shape[2] == 1, p.weight.shape[2] == d.outChannels, e.weight.shape[2] == shape[3] else { return false }
    // From 1 MiB of expanded activations per image, always. Between half a MiB (the L2
    // cache) and 1 MiB, when the bands have at least 4 rows: 28 x 28 x 192 and 28 x 28 x 240
    // gained 4 %, but 14 x 14 x 672 (2-row bands) lost 4 % to the extra calls. Below, the
    // maps stay in cache anyway.
    let bytes = shape[1] * shape[2] * e.outChannels * 4
    let kh = d.weight.shape[0], dy = d.dilation.0, sy = d.stride.0
    return bytes >= 1 << 20
        || (bytes >= 1 << 19 && bandRows(width: shape[2], hidden: e.outChannels, span: (kh - 1) * dy + 1, stride: sy) >= 4)
}

/// Output rows per band: as many as keep the expanded rows (`span` under the first output
/// row, `stride` more per further row) within ~224 KiB.
func bandRows(width: Int, hidden: Int, span: Int, stride: Int) -> Int {
    max(1, ((224 << 10) / (width * hidden * 4) - span) / stride + 1)
}

/// Runs `project(depthwise(expand(x))) (+ x)` band by band; see the file comment.
///
/// - Parameters:
///   - x: `[N, H, W, Cin]`.
///   - identity: add `x` to the projection (stride 1, Cout == Cin).
/// - Returns: `[N, OH, OW, Cout]`, equal to running the three convolutions one after another.
func fusedInvertedResidual(_ x: Tensor, expand: FusedConv, depthwise: FusedConv, project: FusedConv,
                           identity: Bool, pool: ThreadPool?) -> Tensor {
    let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let hidden = expand.outChannels, cout = project.outChannels
    let kh = depthwise.weight.shape[0], kw = depthwise.weight.shape[1]
    let full = ConvGeometry(batch: 1, height: h, width: w, inChannels: hidden, outChannels: hidden, kernelHeight: kh,
                            kernelWidth: kw, stride: depthwise.stride, padding: depthwise.padding,
                            dilation: depthwise.dilation, groups: hidden)
    let (oh, ow) = (full.outHeight, full.outWidth)
    let sy = full.strideY, dy = full.dilationY
    let span = (kh - 1) * dy + 1   // input rows under one output row
    let band = min(oh, bandRows(width: w, hidden: hidden, span: span, stride: sy))
    let capacity = (band - 1) * sy + span    // expanded rows held at once
    precondition(!identity || (oh == h && ow == w && cout == cin), "fusedInvertedResidual: identity shortcut needs equal shapes")
    let threads = pool?.threadCount ?? 1
    return Tensor(uninitializedShape: [n, oh, ow, cout]) { out in
        x.withUnsafeBufferPointer { input in
            withOptionalPointer(expand.bias) { expandBias in
                withOptionalPointer(project.bias) { projectBias in
                    withOptionalPointer(depthwise.bias) { depthwiseBias in
                        depthwise.weight.withUnsafeBufferPointer { depthwiseWeight in
                            let job = BandJob(
                                input: UnsafeSharedPointer(readOnly: input.baseAddress!), output: UnsafeSharedPointer(out.baseAddress!),
                                expandBias: expandBias.map { UnsafeSharedPointer(readOnly: $0) },
                                depthwiseBias: depthwiseBias.map { UnsafeSharedPointer(readOnly: $0) },
                                projectBias: projectBias.map { UnsafeSharedPointer(readOnly: $0) },
                                depthwiseWeight: UnsafeSharedPointer(readOnly: depthwiseWeight.baseAddress!),
                                expand: expand, depthwise: depthwise, project: project, identity: identity, full: full,
                                height: h, width: w, inChannels: cin, hidden: hidden, outChannels: cout, band: band,
                                capacity: capacity, span: span)
                            if let pool, threads > 1 {
                                // Each thread runs whole bands with its own buffers: a band's
                                // kernels are too small to split again (2 threads on one band
                                // scaled 1.2x at batch 8). An image's rows are split into one
                                // static share per thread, each share into k chunks of at most a
                                // band. Each thread first runs its own shares in order (the rows
                                // shared between neighbouring bands carried over, as on one
                                // thread), then takes chunks from the end of the others' shares
                                // if they are behind (another process on their core), at the
                                // price of recomputing the expanded rows above such a chunk.
                                let k = (oh + threads * band - 1) / (threads * band)
                                pool.parallelShares(n * threads * k, chunk: 1) { next in
                                    job.withBuffers { expanded, middle in
                                        var held = 0..<0, heldImage = -1, end = -1
                                        while let unit = next()?.lowerBound {
                                            let image = unit / (threads * k)
                                            let share = ThreadPool.range(of: unit % (threads * k) / k, participants: threads, count: oh)
                                            let part = ThreadPool.range(of: unit % k, participants: k, count: share.count)
                                            let rows = (share.lowerBound + part.lowerBound)..<(share.lowerBound + part.upperBound)
                                            if image != heldImage || rows.lowerBound != end { held = 0..<0 }
                                            job.run(image: image, rows: rows, expanded: expanded, middle: middle, held: &held)
                                            heldImage = image
                                            end = rows.upperBound
                                        }
                                    }
                                }
                            } else {
                                job.withBuffers { expanded, middle in
                                    for image in 0..<n {
                                        var held = 0..<0
                                        job.run(image: image, rows: 0..<oh, expanded: expanded, middle: middle, held: &held)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One block call's arguments, shared by the threads (each writes its own output rows).
private struct BandJob: Sendable {
    let input: UnsafeSharedPointer<Float>            // [N, H, W, Cin]
    let output: UnsafeSharedPointer<Float>           // [N, OH, OW, Cout], written
    let expandBias: UnsafeSharedPointer<Float>?, depthwiseBias: UnsafeSharedPointer<Float>?
    let projectBias: UnsafeSharedPointer<Float>?
    let depthwiseWeight: UnsafeSharedPointer<Float>  // [KH, KW, 1, hidden]
    let expand: FusedConv, depthwise: FusedConv, project: FusedConv
    let identity: Bool
    /// The depthwise convolution over one whole image.
    let full: ConvGeometry
    let height: Int, width: Int, inChannels: Int, hidden: Int, outChannels: Int
    /// Output rows per band, expanded rows held, input rows under one output row.
    let band: Int, capacity: Int, span: Int

    /// Runs `body` with a participant's own buffers: the expanded rows `[capacity, W,
    /// hidden]` and the band's depthwise output `[band, OW, hidden]`.
    func withBuffers(_ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let first = capacity * width * hidden
        ScratchBuffers.with(floats: first + band * full.outWidth * hidden) { scratch in
            body(scratch, scratch + first)
        }
    }

    /// Output rows `rows` of image `image`, band by band, on the calling thread.
    ///
    /// `held`: the input rows whose expansion is in `expanded` (at its front); empty, or what
    /// the previous call on this image left when `rows` starts where that call's rows ended.
    func run(image: Int, rows: Range<Int>, expanded: UnsafeMutablePointer<Float>, middle: UnsafeMutablePointer<Float>,
             held: inout Range<Int>) {
        let (h, w, cin, hidden, cout) = (height, width, inChannels, self.hidden, outChannels)
        let (oh, ow) = (full.outHeight, full.outWidth)
        let sy = full.strideY
        let source = UnsafePointer(input.pointer) + image * h * w * cin
        let target = output.pointer + image * oh * ow * cout
        for oy0 in stride(from: rows.lowerBound, to: rows.upperBound, by: band) {
            let oy1 = min(oy0 + band, rows.upperBound)
            let wantedTop = oy0 * sy - full.padTop, wantedBottom = (oy1 - 1) * sy - full.padTop + span
            let a = max(0, wantedTop), b = min(h, wantedBottom)
            // Keep the rows shared with the previous band (moved to the front), compute the rest.
            let keep = held.overlaps(a..<b) ? max(a, held.lowerBound)..<min(b, held.upperBound) : a..<a
            if !keep.isEmpty && keep.lowerBound != held.lowerBound {
                expanded.update(from: expanded + (keep.lowerBound - held.lowerBound) * w * hidden, count: keep.count * w * hidden)
            }
            let fresh = keep.upperBound..<b
            if !fresh.isEmpty {
                let g = ConvGeometry(batch: 1, height: fresh.count, width: w, inChannels: cin, outChannels: hidden,
                                     kernelHeight: 1, kernelWidth: 1)
                directConvForward(source + fresh.lowerBound * w * cin, weights: expand.packed!,
                                  bias: expandBias.map { UnsafePointer($0.pointer) }, residual: nil,
                                  output: expanded + (fresh.lowerBound - a) * w * hidden, geometry: g,
                                  activation: expand.activation, pool: nil)
            }
            held = a..<b
            // The band's depthwise rows: rows a..<b as the input, the missing rows above
            // and below as padding.
            let g = ConvGeometry(batch: 1, height: b - a, width: w, inChannels: hidden, outChannels: hidden,
                                 kernelHeight: full.kernelHeight, kernelWidth: full.kernelWidth, stride: depthwise.stride,
                                 padding: .explicit(top: a - wantedTop, left: full.padLeft, bottom: wantedBottom - b,
                                                    right: full.padRight),
                                 dilation: depthwise.dilation, groups: hidden)
            precondition(g.outHeight == oy1 - oy0 && g.outWidth == ow, "fusedInvertedResidual: band geometry")
            depthwiseConvForward(expanded, weight: UnsafePointer(depthwiseWeight.pointer),
                                 bias: depthwiseBias.map { UnsafePointer($0.pointer) }, residual: nil, output: middle,
                                 geometry: g, activation: depthwise.activation, pool: nil)
            let pg = ConvGeometry(batch: 1, height: oy1 - oy0, width: ow, inChannels: hidden, outChannels: cout,
                                  kernelHeight: 1, kernelWidth: 1)
            directConvForward(middle, weights: project.packed!, bias: projectBias.map { UnsafePointer($0.pointer) },
                              residual: identity ? source + oy0 * w * cin : nil, output: target + oy0 * ow * cout,
                              geometry: pg, activation: project.activation, pool: nil)
        }
    }
}

