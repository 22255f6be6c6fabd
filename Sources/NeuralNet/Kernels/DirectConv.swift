// Direct ("indirect GEMM") convolution over pre-packed weights, NHWC, epilogue fused.
//
// Why not im2col + the general sgemm: for the convolutions of a backbone the general GEMM
// spends a large share of its time outside the multiply: it re-packs the weights on every
// call, copies every patch row into a packed A panel (for a 1x1 convolution that is a full
// extra pass over the activations), and the bias / residual / activation epilogue is a
// second pass over the output. Here:
//   - the weights are packed once (``PackedConvWeights``, built when a network is frozen)
//     into panels of 24 output channels: `[panel][tap][Cin][24]`, the layout the
//     micro-kernel reads, contiguous;
//   - the activations are read where they are: an output pixel's row of the patch matrix
//     is, tap by tap, a run of Cin contiguous floats of the NHWC input (or zeros in the
//     padding), so the micro-kernel takes one pointer per pixel and tap and never copies;
//   - the epilogue is applied to the accumulators before they are stored.
//
// Micro-kernel: 4 output pixels x 24 output channels, 12 `SIMD8<Float>` accumulators (12 of
// the 16 ymm registers on AVX2; the shape that ran at 98 % of the FMA peak in GEMM.swift),
// one broadcast per pixel and three 8-wide weight loads per input channel.
//
// Blocking: the reduction (taps x Cin) is cut into chunks of about 256 (a chunk of one
// weight panel, 256 x 24 floats, stays in L1), the pixels into blocks of 64 (their input
// rows stay in L2 across the panels). Partial sums of earlier chunks wait in the output.
//
// Per-tile bookkeeping: a 1x1 layer with 16-32 input channels gives a tile only 16-32 x 12
// FMAs, so what surrounds them counts. Tiles whose 4 pixels lie evenly spaced in the input
// (every tile of a 1x1 stride-1 layer; the tiles of other layers that sit in one output row
// with their patches inside the input) run in one loop per panel from a base pointer and
// the tap offsets (``RegisterTile/rowTiles``); only the others get per-pixel pointers in a
// table. A last tile of one pixel (7 x 7 maps at batch 1) runs two panels at a time.
//
// Determinism: each output element is accumulated in the same order (chunk by chunk,
// tap by tap, channel by channel) whichever thread computes it and whichever tile holds it,
// and threads own disjoint (pixel tile, weight panel) pieces: the result is bitwise identical
// for any thread count, and for a pixel computed band by band or over the whole map.
import CIntrinsics
import TensorCore

/// Convolution weights `[KH, KW, Cin, Cout]` (groups = 1) packed for ``directConvForward``:
/// output channels in panels of 24 and a last panel of 8, 16 or 24 (``panelWidths(_:)``;
/// missing channels are zero), each panel `[KH * KW * Cin][width]`.
public struct PackedConvWeights: Sendable {
    public let kernelHeight: Int, kernelWidth: Int, inChannels: Int, outChannels: Int
    /// The packed panels, one after another.
    let storage: [Float]
    /// Per panel: first output channel, width in floats (24, 16 or 8), offset in `storage`.
    let panels: [(column: Int, width: Int, offset: Int)]

    /// The panel widths for `outChannels`: 24 as long as possible, and the rest in one
    /// 8-, 16- or 24-wide panel (zero-padded). The 4 x 24 and 4 x 16 kernels run near the
    /// same speed per channel; the 4 x 8 one is bound by its four broadcasts per four FMAs
    /// and runs at about half of it, so a last 24 + 8 (e.g. 32 channels) becomes 16 + 16.
    static func panelWidths(_ outChannels: Int) -> [Int] {
        var widths: [Int] = []
        var left = outChannels
        while left > 0 {
            let chosen: Int
            switch left {
            case 25...32: chosen = 16   // not 24 + a slow 8-wide last panel
            case 17...: chosen = 24
            case 9...16: chosen = 16
            default: chosen = 8
            }
            widths.append(chosen)
            left -= chosen
        }
        return widths
    }

    /// Packs `weight` (`[KH, KW, Cin, Cout]`, HWIO).
    public init(_ weight: Tensor) {
        precondition(weight.rank == 4, "PackedConvWeights: weight \(weight.shape) is not [KH, KW, Cin, Cout]")
        kernelHeight = weight.shape[0]; kernelWidth = weight.shape[1]
        inChannels = weight.shape[2]; outChannels = weight.shape[3]
        let depth = kernelHeight * kernelWidth * inChannels
        var panels: [(column: Int, width: Int, offset: Int)] = []
        var column = 0, offset = 0
        for chosen in PackedConvWeights.panelWidths(outChannels) {
            panels.append((column, chosen, offset))
            offset += depth * chosen
            column += chosen
        }
        var packed = [Float](repeating: 0, count: offset)
        let cout = outChannels
        weight.withUnsafeBufferPointer { w in
            for panel in panels {
                let valid = min(panel.width, cout - panel.column)
                for row in 0..<depth {
                    for j in 0..<valid {
                        packed[panel.offset + row * panel.width + j] = w[row * cout + panel.column + j]
                    }
                }
            }
        }
        storage = packed
        self.panels = panels
    }
}

/// `output = act(conv(input) + bias + residual)` for a convolution with one group, using
/// weights packed by ``PackedConvWeights``.
///
/// - Parameters:
///   - input: `[N, H, W, Cin]`.
///   - weights: packed `[KH, KW, Cin, Cout]`; must match `geometry`.
///   - bias: `[Cout]` or nil.
///   - residual: `[N, OH, OW, Cout]` or nil.
///   - output: `[N, OH, OW, Cout]`; every element is written (it may be uninitialised).
///   - geometry: sizes, stride, padding and dilation; `groups` must be 1.
///   - activation: applied last.
///   - pool: threads; the pixels are split between them (blocks of tiles on large maps,
///     equal channels x tiles on small ones), the output channels first when there are
///     more of those than pixels.
public func directConvForward(
    _ input: UnsafePointer<Float>, weights: PackedConvWeights, bias: UnsafePointer<Float>?,
    residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, geometry g: ConvGeometry,
    activation: Activation, pool: ThreadPool?
) {
    precondition(g.groups == 1 && weights.kernelHeight == g.kernelHeight && weights.kernelWidth == g.kernelWidth
                 && weights.inChannels == g.inChannels && weights.outChannels == g.outChannels,
                 "directConvForward: packed weights \(weights.kernelHeight)x\(weights.kernelWidth)x"
                 + "\(weights.inChannels)x\(weights.outChannels) do not match \(g)")
    if g.inChannels < 8 && g.kernelWidth > 1 && g.dilationX == 1 {
        rowRunsForward(input, weights: weights, bias: bias, residual: residual, output: output, geometry: g,
                       activation: activation, pool: pool)
        return
    }
    let m = g.batch * g.outHeight * g.outWidth
    let tiles = (m + 3) / 4
    let chunks = reductionChunks(taps: g.kernelHeight * g.kernelWidth, channels: g.inChannels)
    // What taps in the padding read (one pixel of zeros).
    let zeros = g.inChannels <= sharedZeros.count ? sharedZeros : [Float](repeating: 0, count: g.inChannels)
    weights.storage.withUnsafeBufferPointer { packed in
        zeros.withUnsafeBufferPointer { zero in
            let job = DirectConvJob(
                input: UnsafeSharedPointer(readOnly: input), zeros: UnsafeSharedPointer(readOnly: zero.baseAddress!),
                packed: UnsafeSharedPointer(readOnly: packed.baseAddress!), panels: weights.panels,
                bias: bias.map { UnsafeSharedPointer(readOnly: $0) }, residual: residual.map { UnsafeSharedPointer(readOnly: $0) },
                output: UnsafeSharedPointer(output), g: g, outHeight: g.outHeight, outWidth: g.outWidth,
                pixelStride: g.inChannels, pixels: m, chunks: chunks, activation: activation)
            // Small problems run on the caller: the hand-off costs more than it saves.
            let flops = m * g.outChannels * g.kernelHeight * g.kernelWidth * g.inChannels
            let allPanels = 0..<weights.panels.count
            if let pool, pool.threadCount > 1, flops >= 1 << 18 {
                let block = DirectConvJob.tilesPerBlock, threads = pool.threadCount
                if g.outChannels > m && weights.panels.count >= 2 * threads {
                    // More output channels than pixels (14 x 14 and 7 x 7 maps): the weights
                    // outweigh the input, so each thread takes a run of panels, reading only its
                    // share of the weights, and a handful of pixel tiles no longer splits
                    // unevenly (13 tiles on 2 threads: 7 and 6). The runs hold equal numbers of
                    // channels x tiles; a panel at a boundary is split by tiles (compact's 7 x 7
                    // projection to 10 x 24 + 16 channels: 6 and 5 whole panels were 144 and
                    // 112 channels, one thread idle 30 of 160 us).
                    pool.parallelRanges(threads) { share in
                        for p in share { job.runShare(p, of: threads, tiles: tiles, panelMajor: true) }
                    }
                } else if tiles >= 4 * threads * block {
                    // Whole blocks, each thread first through its own static share, then
                    // helping the other (a pixel's value does not depend on which thread or
                    // block computes it). Against a static split: equal when the cores run
                    // evenly, up to 3 % faster on Lite0 / compact at 2 threads with another
                    // process taking 30 % of one core.
                    pool.parallelChunks(tiles, chunk: block) { job.run(tiles: $0, panels: allPanels) }
                } else {
                    // Equal channels x tiles per thread, a tile at a boundary cut by panels (a
                    // 14 x 14 map's 49 tiles split 25 / 24 left one thread idle 4 % of the layer).
                    pool.parallelRanges(threads) { share in
                        for p in share { job.runShare(p, of: threads, tiles: tiles, panelMajor: false) }
                    }
                }
            } else {
                job.run(tiles: 0..<tiles, panels: allPanels)
            }
        }
    }
}

/// ``directConvForward`` for few input channels (a stem on RGB), where a tap would be a run
/// of 3 floats and the per-tap bookkeeping would cost more than its 3 x 12 FMAs.
///
/// The input is copied, band of output rows by band, into a zero-padded buffer that covers
/// every tap of the band, so that a whole kernel row (KW x Cin floats) is one contiguous
/// run: the band's job sees a KH x 1 kernel over KW * Cin "channels", with consecutive
/// pixels Cin floats apart (the weight layout (ky, kx, ci) is already ordered that way).
/// Each thread copies and then convolves its own bands: the padded rows are still in L1/L2
/// when the kernel reads them, and there is one parallel call instead of one for the copy
/// and one for the convolution (a whole-image copy, 600 KiB at 224 x 224, was its own call:
/// 85 us of the compact network's 380 us stem at 2 threads, with 30 us of one thread idle).
private func rowRunsForward(
    _ input: UnsafePointer<Float>, weights: PackedConvWeights, bias: UnsafePointer<Float>?,
    residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, geometry g: ConvGeometry,
    activation: Activation, pool: ThreadPool?
) {
    let (oh, ow, cin) = (g.outHeight, g.outWidth, g.inChannels)
    let paddedWidth = (ow - 1) * g.strideX + g.kernelWidth
    let span = (g.kernelHeight - 1) * g.dilationY + 1   // padded rows under one output row
    let rowFloats = paddedWidth * cin
    // Output rows per band: the band's padded rows within ~48 KiB (8 rows, 46 KiB, for a
    // 224 x 224 RGB stem of stride 2). Set by the shape alone, so that every pixel is
    // computed the same way on any number of threads.
    let band = min(oh, max(1, ((48 << 10) / (rowFloats * 4) - span) / g.strideY + 1))
    let bandsPerImage = (oh + band - 1) / band
    let capacity = (band - 1) * g.strideY + span
    let chunks = reductionChunks(taps: g.kernelHeight, channels: g.kernelWidth * cin)
    let x0 = max(0, g.padLeft), x1 = min(paddedWidth, g.width + g.padLeft)   // padded columns with input
    let flops = g.batch * oh * ow * g.outChannels * g.kernelHeight * g.kernelWidth * cin
    weights.storage.withUnsafeBufferPointer { packed in
        let source = UnsafeSharedPointer(readOnly: input), target = UnsafeSharedPointer(output)
        let weightPanels = UnsafeSharedPointer(readOnly: packed.baseAddress!), zeros = sharedZeros
        let biasPointer = bias.map { UnsafeSharedPointer(readOnly: $0) }
        let residualPointer = residual.map { UnsafeSharedPointer(readOnly: $0) }
        let runBands: @Sendable (_ next: () -> Range<Int>?) -> Void = { next in
            ScratchBuffers.with(floats: capacity * rowFloats) { padded in
                zeros.withUnsafeBufferPointer { zero in
                    while let unit = next()?.lowerBound {
                        let n = unit / bandsPerImage, oy0 = unit % bandsPerImage * band, oy1 = min(oh, oy0 + band)
                        let rows = (oy1 - oy0 - 1) * g.strideY + span
                        for r in 0..<rows {
                            let row = padded + r * rowFloats
                            let iy = oy0 * g.strideY + r - g.padTop
                            guard iy >= 0 && iy < g.height && x1 > x0 else {
                                row.update(repeating: 0, count: rowFloats)
                                continue
                            }
                            row.update(repeating: 0, count: x0 * cin)
                            (row + x0 * cin).update(from: UnsafePointer(source.pointer) + ((n * g.height + iy) * g.width + x0 - g.padLeft) * cin,
                                                    count: (x1 - x0) * cin)
                            (row + x1 * cin).update(repeating: 0, count: (paddedWidth - x1) * cin)
                        }
                        let bandGeometry = ConvGeometry(
                            batch: 1, height: rows, width: paddedWidth, inChannels: g.kernelWidth * cin, outChannels: g.outChannels,
                            kernelHeight: g.kernelHeight, kernelWidth: 1, stride: (g.strideY, g.strideX), dilation: (g.dilationY, 1))
                        let pixels = (oy1 - oy0) * ow, first = (n * oh + oy0) * ow * g.outChannels
                        let job = DirectConvJob(
                            input: UnsafeSharedPointer(readOnly: padded), zeros: UnsafeSharedPointer(readOnly: zero.baseAddress!),
                            packed: weightPanels, panels: weights.panels, bias: biasPointer,
                            residual: residualPointer.map { UnsafeSharedPointer(readOnly: $0.pointer + first) },
                            output: UnsafeSharedPointer(target.pointer + first), g: bandGeometry, outHeight: oy1 - oy0,
                            outWidth: ow, pixelStride: cin, pixels: pixels, chunks: chunks, activation: activation)
                        job.run(tiles: 0..<((pixels + 3) / 4), panels: 0..<weights.panels.count)
                    }
                }
            }
        }
        let units = g.batch * bandsPerImage
        if let pool, pool.threadCount > 1, flops >= 1 << 18 {
            // Whole bands, each thread through its own share first, then helping the other.
            pool.parallelShares(units, chunk: 1, runBands)
        } else {
            var unit = 0
            runBands {
                defer { unit += 1 }
                return unit < units ? unit..<(unit + 1) : nil
            }
        }
    }
}

/// Zeros for the taps of patches that reach into the padding, shared by all calls with up to
/// this many input channels (an array per call was a malloc and a memset per call).
private let sharedZeros = [Float](repeating: 0, count: 4096)

/// A piece of the reduction: taps `taps`, input channels `channels` of each.
struct ReductionChunk: Sendable {
    var taps: Range<Int>
    var channels: Range<Int>
}

/// Cuts `taps x channels` into chunks of about 256 reductions: several whole taps when Cin
/// is small, equal channel ranges of one tap when it is large. Depends on the shape only.
func reductionChunks(taps: Int, channels: Int, target: Int = 256) -> [ReductionChunk] {
    if channels >= target {
        let parts = (channels + target - 1) / target
        var chunks: [ReductionChunk] = []
        chunks.reserveCapacity(taps * parts)
        for tap in 0..<taps {
            for part in 0..<parts {
                let range = ThreadPool.range(of: part, participants: parts, count: channels)
                chunks.append(ReductionChunk(taps: tap..<(tap + 1), channels: range))
            }
        }
        return chunks
    }
    let perChunk = max(1, target / max(channels, 1))
    let count = (taps + perChunk - 1) / perChunk
    return (0..<count).map { ReductionChunk(taps: ThreadPool.range(of: $0, participants: count, count: taps), channels: 0..<channels) }
}

/// One call's arguments, shared by the pool's participants (each writes its own pixels).
private struct DirectConvJob: Sendable {
    let input: UnsafeSharedPointer<Float>
    let zeros: UnsafeSharedPointer<Float>
    let packed: UnsafeSharedPointer<Float>
    let panels: [(column: Int, width: Int, offset: Int)]
    let bias: UnsafeSharedPointer<Float>?
    let residual: UnsafeSharedPointer<Float>?
    let output: UnsafeSharedPointer<Float>
    /// The input side of the convolution as the job sees it (after any padding copy).
    let g: ConvGeometry
    /// The output size (of the convolution as called).
    let outHeight: Int, outWidth: Int
    /// Floats from one input pixel to the next (Cin, or the real Cin for row runs).
    let pixelStride: Int
    let pixels: Int
    let chunks: [ReductionChunk]
    let activation: Activation

    /// Pixel tiles of 4 per block of this many: their input rows stay in L2 across panels.
    static let tilesPerBlock = 16

    /// Participant `p`'s part when `participants` share all `tiles` x all panels in equal
    /// amounts of channels x tiles: the units (panel, tile) in panel-major or tile-major
    /// order, a unit belonging to the participant whose part holds its start. Panels or
    /// tiles wholly in the part run in one call; one at a boundary is cut (a panel by tiles,
    /// a tile by panels). Works out the cuts without allocating: a forward pass makes ~20 of
    /// these calls, each right after a kernel has evicted the caches (computing the cuts
    /// into arrays cost 3-8 us a call there).
    func runShare(_ p: Int, of participants: Int, tiles: Int, panelMajor: Bool) {
        let cout = g.outChannels, count = panels.count
        let total = cout * tiles
        let a = p * total / participants, b = (p + 1) * total / participants
        guard a < b else { return }
        if panelMajor {
            // Panel i's units start at column_i x tiles, one per tile, `columns` wide each.
            var wholeStart = -1   // first panel of a pending run of whole panels
            for i in 0..<count {
                let start = panels[i].column * tiles, columns = min(panels[i].width, cout - panels[i].column)
                func tile(at x: Int) -> Int { min(tiles, max(0, (x - start + columns - 1) / columns)) }
                let part = tile(at: a)..<tile(at: b)
                if part == 0..<tiles {
                    if wholeStart < 0 { wholeStart = i }
                    continue
                }
                if wholeStart >= 0 { run(tiles: 0..<tiles, panels: wholeStart..<i); wholeStart = -1 }
                if !part.isEmpty { run(tiles: part, panels: i..<(i + 1)) }
            }
            if wholeStart >= 0 { run(tiles: 0..<tiles, panels: wholeStart..<count) }
        } else {
            // Tile t's units start at t x cout, panel i's at column_i within it.
            func firstPanel(from column: Int) -> Int {
                var i = 0
                while i < count && panels[i].column < column { i += 1 }
                return i
            }
            func runTile(_ t: Int, panels: Range<Int>) {
                if !panels.isEmpty { run(tiles: t..<(t + 1), panels: panels) }
            }
            let (t0, r0) = (a / cout, a % cout), (t1, r1) = (b / cout, b % cout)
            if t0 == t1 {
                runTile(t0, panels: firstPanel(from: r0)..<firstPanel(from: r1))
                return
            }
            var whole = t0
            if r0 > 0 {
                runTile(t0, panels: firstPanel(from: r0)..<count)
                whole += 1
            }
            if whole < t1 { run(tiles: whole..<t1, panels: 0..<count) }
            if r1 > 0 && t1 < tiles { runTile(t1, panels: 0..<firstPanel(from: r1)) }
        }
    }

    /// Computes output pixel tiles `tiles` (4 pixels each) for weight panels `panelRange`.
    func run(tiles: Range<Int>, panels panelRange: Range<Int>) {
        let g = self.g
        let cin = g.inChannels, cout = g.outChannels
        let x = UnsafePointer(input.pointer), zero = UnsafePointer(zeros.pointer)
        var maxTaps = 1
        for chunk in chunks { maxTaps = max(maxTaps, chunk.taps.count) }
        // Row and column offset of each kernel tap, and its offset from the patch's top-left
        // input pixel for patches that lie wholly inside the input (most of them: their
        // pointers need no bounds checks); computed once per call, on the stack (as arrays,
        // with the call's other small allocations, they made a 1x1 call on a few pixels cost
        // ~1.4 us, and a band-by-band block makes ~60 such calls).
        let kernelTaps = g.kernelHeight * g.kernelWidth
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * kernelTaps) { tapTable in
            let tapRows = tapTable.baseAddress!, tapColumns = tapRows + kernelTaps, tapOffsets = tapColumns + kernelTaps
            var lastRow = 0, lastColumn = 0
            for t in 0..<kernelTaps {
                tapRows[t] = (t / g.kernelWidth) * g.dilationY
                tapColumns[t] = (t % g.kernelWidth) * g.dilationX
                tapOffsets[t] = (tapRows[t] * g.width + tapColumns[t]) * pixelStride
                lastRow = max(lastRow, tapRows[t])
                lastColumn = max(lastColumn, tapColumns[t])
            }
            // 1x1, stride 1, no padding: pixel p of the output reads pixel p of the input.
            let pointwise = g.kernelHeight == 1 && g.kernelWidth == 1 && g.strideY == 1 && g.strideX == 1
                && g.padTop == 0 && g.padLeft == 0 && g.height == outHeight && g.width == outWidth
            let block = DirectConvJob.tilesPerBlock
            let (lower, upper, clamps) = TileEpilogue.clamp(for: activation)
            // A block's tiles for one chunk, found once and used by every panel: runs of whole
            // tiles in one output row with their patches inside the input, and the other tiles
            // with their input pointers in `table` ([tile][tap][4 pixels]).
            withUnsafeTemporaryAllocation(of: TileRun.self, capacity: block) { runs in
                withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: block * maxTaps * 4) { table in
                    let table = table.baseAddress!
                    for blockStart in stride(from: tiles.lowerBound, to: tiles.upperBound, by: block) {
                        let blockEnd = min(blockStart + block, tiles.upperBound)
                        for (chunkIndex, chunk) in chunks.enumerated() {
                            let first = chunkIndex == 0, last = chunkIndex == chunks.count - 1
                            let taps = chunk.taps.count, c0 = chunk.channels.lowerBound
                            if pointwise {
                                // Weights are cold in the first block of tiles, and again in every
                                // block when they outgrow L2.
                                let prefetch = blockStart == tiles.lowerBound || chunk.channels.count * cout * 4 > 256 << 10
                                runPointwise(tiles: blockStart..<blockEnd, panels: panelRange, channels: chunk.channels,
                                             first: first, last: last, prefetch: prefetch,
                                             lower: lower, upper: upper, clamps: clamps)
                                continue
                            }
                            // No integer division per pixel or tap (a 64-bit idiv is ~40 cycles on
                            // this CPU, and per tile they had cost as much as a 1x1 tile's FMAs):
                            // the block's first pixel is located once, the rest step along the row.
                            let firstPixel = min(blockStart * 4, pixels - 1)
                            var ox = firstPixel % outWidth, oy = (firstPixel / outWidth) % outHeight
                            var n = firstPixel / (outWidth * outHeight)
                            let pixelStep = g.strideX * pixelStride
                            var runCount = 0
                            for tile in blockStart..<blockEnd {
                                let p0 = tile * 4
                                let iy0 = oy * g.strideY - g.padTop, ix0 = ox * g.strideX - g.padLeft
                                let base = x + n * g.height * g.width * pixelStride + c0
                                // Four pixels in one output row, every patch inside the input: the tile
                                // joins a run of such tiles (no pointers in the table).
                                if p0 + 4 <= pixels && ox + 4 <= outWidth && iy0 >= 0 && iy0 + lastRow < g.height && ix0 >= 0
                                    && ix0 + 3 * g.strideX + lastColumn < g.width {
                                    let corner = base + (iy0 * g.width + ix0) * pixelStride
                                    if runCount > 0, runs[runCount - 1].count > 0,
                                       runs[runCount - 1].input + runs[runCount - 1].count * 4 * pixelStep == corner {
                                        runs[runCount - 1].count += 1
                                    } else {
                                        runs[runCount] = TileRun(tile: tile, count: 1, input: corner)
                                        runCount += 1
                                    }
                                    ox += 4
                                    if ox == outWidth {
                                        ox = 0; oy += 1
                                        if oy == outHeight { oy = 0; n += 1 }
                                    }
                                    continue
                                }
                                runs[runCount] = TileRun(tile: tile, count: 0, input: x)
                                runCount += 1
                                for i in 0..<4 {
                                    let p = p0 + i
                                    let entry = table + (tile - blockStart) * taps * 4 + i
                                    if p >= pixels {
                                        // Pixels past the end repeat the previous one; their results are not stored.
                                        for index in 0..<taps { entry[index * 4] = entry[index * 4 - 1] }
                                        continue
                                    }
                                    let iy0 = oy * g.strideY - g.padTop, ix0 = ox * g.strideX - g.padLeft
                                    let base = x + n * g.height * g.width * pixelStride + c0
                                    if iy0 >= 0 && iy0 + lastRow < g.height && ix0 >= 0 && ix0 + lastColumn < g.width {
                                        let corner = base + (iy0 * g.width + ix0) * pixelStride
                                        for index in 0..<taps { entry[index * 4] = corner + tapOffsets[chunk.taps.lowerBound + index] }
                                    } else {
                                        for index in 0..<taps {
                                            let t = chunk.taps.lowerBound + index
                                            let iy = iy0 + tapRows[t], ix = ix0 + tapColumns[t]
                                            let inside = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width
                                            entry[index * 4] = inside ? base + (iy * g.width + ix) * pixelStride : zero
                                        }
                                    }
                                    ox += 1
                                    if ox == outWidth {
                                        ox = 0; oy += 1
                                        if oy == outHeight { oy = 0; n += 1 }
                                    }
                                }
                            }
                            let depth = chunk.channels.count
                            // A last tile of one pixel: its 24-wide panels two at a time, each pair
                            // right after its second panel's tiles (the weights still in cache).
                            var onePixel: SinglePixelPairs? = nil
                            if let lastRun = runs.prefix(runCount).last, lastRun.count == 0, lastRun.tile * 4 + 1 == pixels {
                                onePixel = SinglePixelPairs(pointers: table + (lastRun.tile - blockStart) * taps * 4, tile: lastRun.tile,
                                                            taps: taps, reductionOffset: chunk.taps.lowerBound * cin + c0, depth: depth,
                                                            first: first, last: last, lower: lower, upper: upper, clamps: clamps)
                            }
                            for panelIndex in panelRange {
                                let panel = panels[panelIndex]
                                defer { onePixel?.finished(panel: panelIndex, self) }
                                let weights = UnsafePointer(packed.pointer + panel.offset) + (chunk.taps.lowerBound * cin + c0) * panel.width
                                let columns = min(panel.width, cout - panel.column)
                                for run in runs.prefix(runCount) {
                                    let m0 = run.tile * 4
                                    let out = output.pointer + m0 * cout + panel.column
                                    let epilogue = TileEpilogue(
                                        first: first, last: last, rows: min(4, pixels - m0), columns: columns, ldc: cout,
                                        bias: bias.map { UnsafePointer($0.pointer + panel.column) },
                                        residual: residual.map { UnsafePointer($0.pointer + m0 * cout + panel.column) },
                                        activation: activation, lower: lower, upper: upper, clamps: clamps)
                                    if run.count > 0 {
                                        Self.rowTiles(width: panel.width, run.input, pixelStep: pixelStep, count: run.count, taps: taps,
                                                      tapOffsets: tapOffsets + chunk.taps.lowerBound, depth: depth,
                                                      weights: weights, tapStride: cin * panel.width, out: out, epilogue)
                                        continue
                                    }
                                    // A one-pixel tile of a 24-wide panel: `onePixel`, two panels at a time.
                                    guard panel.width != 24 || epilogue.rows > 1 else { continue }
                                    Self.tile(width: panel.width, table + (run.tile - blockStart) * taps * 4, taps: taps,
                                              depth: depth, weights: weights, tapStride: cin * panel.width, out: out, epilogue)
                                }
                            }
                            onePixel?.flush(self)
                        }
                    }
                }
            }
        }
    }
}

extension DirectConvJob {
    /// ``RegisterTile/tile(_:taps:depth:weights:tapStride:out:_:)`` of the tile for a panel of
    /// `width` channels.
    static func tile(width: Int, _ pointers: UnsafePointer<UnsafePointer<Float>>, taps: Int, depth: Int,
                     weights: UnsafePointer<Float>, tapStride: Int, out: UnsafeMutablePointer<Float>, _ epilogue: TileEpilogue) {
        switch width {
        case 24: Accumulators24.tile(pointers, taps: taps, depth: depth, weights: weights, tapStride: tapStride, out: out, epilogue)
        case 16: Accumulators16.tile(pointers, taps: taps, depth: depth, weights: weights, tapStride: tapStride, out: out, epilogue)
        default: Accumulators8.tile(pointers, taps: taps, depth: depth, weights: weights, tapStride: tapStride, out: out, epilogue)
        }
    }

    /// ``RegisterTile/rowTiles(_:pixelStep:count:taps:tapOffsets:depth:weights:tapStride:out:_:)``
    /// of the tile for a panel of `width` channels.
    static func rowTiles(width: Int, _ input: UnsafePointer<Float>, pixelStep: Int, count: Int, taps: Int,
                         tapOffsets: UnsafePointer<Int>, depth: Int, weights: UnsafePointer<Float>, tapStride: Int,
                         out: UnsafeMutablePointer<Float>, _ epilogue: TileEpilogue, prefetch: WeightPrefetch = .none) {
        switch width {
        case 24:
            Accumulators24.rowTiles(input, pixelStep: pixelStep, count: count, taps: taps, tapOffsets: tapOffsets, depth: depth,
                                    weights: weights, tapStride: tapStride, out: out, epilogue, prefetch: prefetch)
        case 16:
            Accumulators16.rowTiles(input, pixelStep: pixelStep, count: count, taps: taps, tapOffsets: tapOffsets, depth: depth,
                                    weights: weights, tapStride: tapStride, out: out, epilogue, prefetch: prefetch)
        default:
            Accumulators8.rowTiles(input, pixelStep: pixelStep, count: count, taps: taps, tapOffsets: tapOffsets, depth: depth,
                                   weights: weights, tapStride: tapStride, out: out, epilogue, prefetch: prefetch)
        }
    }

    /// Tiles `tiles` of a 1x1 stride-1 convolution for input channels `channels`: the input
    /// row of output pixel p is at `p * pixelStride`, so whole tiles need no pointer table.
    func runPointwise(tiles: Range<Int>, panels panelRange: Range<Int>, channels: Range<Int>, first: Bool, last: Bool,
                      prefetch: Bool,
                      lower: SIMD8<Float>, upper: SIMD8<Float>, clamps: Bool) {
        let cout = g.outChannels
        let x = UnsafePointer(input.pointer) + channels.lowerBound
        let whole = tiles.lowerBound..<max(tiles.lowerBound, min(tiles.upperBound, pixels / 4))
        let m0 = tiles.lowerBound * 4
        // A last tile of one pixel: its 24-wide panels two at a time, each pair right after
        // its second panel's tiles, while the weights are in cache (after all panels, layers
        // whose weights outgrow L2 read them all again from memory).
        let lastPixel = x + (pixels - 1) * pixelStride
        var onePixel: SinglePixelPairs? = nil
        withUnsafePointer(to: lastPixel) { pointer in
            if whole.upperBound < tiles.upperBound && whole.upperBound * 4 + 1 == pixels {
                onePixel = SinglePixelPairs(pointers: pointer, tile: whole.upperBound, taps: 1,
                                            reductionOffset: channels.lowerBound, depth: channels.count, first: first, last: last,
                                            lower: lower, upper: upper, clamps: clamps)
            }
            for index in panelRange {
                let panel = panels[index]
                defer { onePixel?.finished(panel: index, self) }
                let weights = UnsafePointer(packed.pointer + panel.offset) + channels.lowerBound * panel.width
                // The next panel's weights, or the first panel's for the next block of tiles
                // (layers whose weights outgrow L2 stream them again for every block).
                let next = panels[index + 1 < panelRange.upperBound ? index + 1 : panelRange.lowerBound]
                let ahead = !prefetch ? WeightPrefetch.none
                    : WeightPrefetch(UnsafePointer(packed.pointer + next.offset) + channels.lowerBound * next.width,
                                     floats: channels.count * next.width, tiles: whole.count)
                var epilogue = TileEpilogue(
                    first: first, last: last, rows: 4, columns: min(panel.width, cout - panel.column), ldc: cout,
                    bias: bias.map { UnsafePointer($0.pointer + panel.column) },
                    residual: residual.map { UnsafePointer($0.pointer + m0 * cout + panel.column) },
                    activation: activation, lower: lower, upper: upper, clamps: clamps)
                let out = output.pointer + m0 * cout + panel.column
                if !whole.isEmpty {
                    var zero = 0
                    Self.rowTiles(width: panel.width, x + m0 * pixelStride, pixelStep: pixelStride, count: whole.count, taps: 1,
                                  tapOffsets: &zero, depth: channels.count, weights: weights, tapStride: 0, out: out, epilogue,
                                  prefetch: ahead)
                }
                // The last tile of the image may have fewer than 4 pixels; the missing ones repeat
                // the last pixel and are not stored.
                if whole.upperBound < tiles.upperBound {
                    let start = whole.upperBound * 4
                    let pointers = (0..<4).map { x + min(start + $0, pixels - 1) * pixelStride }
                    epilogue.rows = pixels - start
                    epilogue.residual = residual.map { UnsafePointer($0.pointer + start * cout + panel.column) }
                    let tileOut = output.pointer + start * cout + panel.column
                    // A one-pixel tile of a 24-wide panel: `onePixel`, two panels at a time.
                    if panel.width != 24 || epilogue.rows > 1 {
                        pointers.withUnsafeBufferPointer { p in
                            Self.tile(width: panel.width, p.baseAddress!, taps: 1, depth: channels.count, weights: weights,
                                      tapStride: 0, out: tileOut, epilogue)
                        }
                    }
                }
            }
            onePixel?.flush(self)
        }
    }

    /// Runs ``Accumulators24/singlePixel(_:taps:depth:tapStride:weights:out:_:)`` for panels
    /// `a` and `b` (24 wide; `b` may equal `a`) of a one-pixel tile.
    func singlePixel(_ p: SinglePixelPairs, panels a: Int, _ b: Int) {
        let cout = g.outChannels, m0 = p.tile * 4
        func epilogue(_ panel: (column: Int, width: Int, offset: Int)) -> TileEpilogue {
            TileEpilogue(first: p.first, last: p.last, rows: 1, columns: min(24, cout - panel.column), ldc: cout,
                         bias: bias.map { UnsafePointer($0.pointer + panel.column) },
                         residual: residual.map { UnsafePointer($0.pointer + m0 * cout + panel.column) },
                         activation: activation, lower: p.lower, upper: p.upper, clamps: p.clamps)
        }
        func weights(_ panel: (column: Int, width: Int, offset: Int)) -> UnsafePointer<Float> {
            UnsafePointer(packed.pointer + panel.offset) + p.reductionOffset * 24
        }
        let (pa, pb) = (panels[a], panels[b])
        Accumulators24.singlePixel(p.pointers, taps: p.taps, depth: p.depth, tapStride: g.inChannels * 24,
                                   weights: (weights(pa), weights(pb)),
                                   out: (output.pointer + m0 * cout + pa.column, output.pointer + m0 * cout + pb.column),
                                   (epilogue(pa), epilogue(pb)))
    }
}

/// The last tile of a reduction chunk when it holds one pixel (a 7 x 7 map at batch 1): its
/// 24-wide panels run two at a time (``Accumulators24/singlePixel(_:taps:depth:tapStride:weights:out:_:)``),
/// each pair as soon as the panel loop has finished its second panel.
private struct SinglePixelPairs {
    /// The pixel's input pointers, `[tap][4]` (only the first of each 4 is read).
    let pointers: UnsafePointer<UnsafePointer<Float>>
    let tile: Int, taps: Int, reductionOffset: Int, depth: Int
    let first: Bool, last: Bool
    let lower: SIMD8<Float>, upper: SIMD8<Float>, clamps: Bool
    /// A finished 24-wide panel waiting for a partner.
    var waiting: Int? = nil

    init(pointers: UnsafePointer<UnsafePointer<Float>>, tile: Int, taps: Int, reductionOffset: Int, depth: Int, first: Bool,
         last: Bool, lower: SIMD8<Float>, upper: SIMD8<Float>, clamps: Bool) {
        self.pointers = pointers; self.tile = tile; self.taps = taps; self.reductionOffset = reductionOffset
        self.depth = depth; self.first = first; self.last = last; self.lower = lower; self.upper = upper
        self.clamps = clamps
    }

    /// The panel loop is done with panel `index`.
    mutating func finished(panel index: Int, _ job: DirectConvJob) {
        guard job.panels[index].width == 24 else { return }
        if let a = waiting {
            job.singlePixel(self, panels: a, index)
            waiting = nil
        } else {
            waiting = index
        }
    }

    /// After the panel loop: a panel left without a partner runs paired with itself.
    mutating func flush(_ job: DirectConvJob) {
        if let a = waiting { job.singlePixel(self, panels: a, a) }
        waiting = nil
    }
}

/// What happens to a tile's accumulators around the multiply.
struct TileEpilogue {
    /// First chunk: start from zero; otherwise from the partial sums in the output.
    var first: Bool
    /// Last chunk: add bias and residual, apply the activation.
    var last: Bool
    /// Valid pixels (rows, 1...4) and output channels (columns) of the tile.
    var rows: Int, columns: Int
    var ldc: Int
    var bias: UnsafePointer<Float>?
    var residual: UnsafePointer<Float>?
    var activation: Activation
    /// The activation as a clamp to `lower...upper`, when `clamps` (none, relu, relu6).
    var lower: SIMD8<Float>, upper: SIMD8<Float>, clamps: Bool

    /// The clamp bounds of an activation, and whether it is a clamp at all.
    static func clamp(for activation: Activation) -> (SIMD8<Float>, SIMD8<Float>, Bool) {
        switch activation {
        case .none: return (SIMD8(repeating: -.infinity), SIMD8(repeating: .infinity), true)
        case .relu: return (SIMD8(repeating: 0), SIMD8(repeating: .infinity), true)
        case .relu6: return (SIMD8(repeating: 0), SIMD8(repeating: 6), true)
        default: return (.zero, .zero, false)
        }
    }

    /// Loads 8 floats of row `row` from column `column`, zero past the valid columns.
    @inline(__always)
    func load(_ p: UnsafePointer<Float>, row: Int, column: Int) -> SIMD8<Float> {
        let q = p + row * ldc + column
        if column + 8 <= columns { return UnsafeRawPointer(q).loadUnaligned(as: SIMD8<Float>.self) }
        var v = SIMD8<Float>()
        for j in 0..<max(0, columns - column) { v[j] = q[j] }
        return v
    }

    /// The bias piece at `column` (zero without bias or before the last chunk).
    @inline(__always)
    func biasPiece(_ column: Int) -> SIMD8<Float> {
        guard last, let bias else { return .zero }
        return load(bias, row: 0, column: column)
    }

    /// Finishes (on the last chunk: bias piece `b`, residual, activation) and stores one
    /// 8-wide piece of a row.
    @inline(__always)
    func store(_ value: SIMD8<Float>, _ b: SIMD8<Float>, _ out: UnsafeMutablePointer<Float>, row: Int, column: Int) {
        guard row < rows else { return }
        var v = value
        if last {
            v += b
            if let residual { v += load(residual, row: row, column: column) }
            if clamps {
                v = clamp8(v, lower, upper)
            } else {
                for j in 0..<8 { v[j] = activation.apply(v[j]) }
            }
        }
        let q = out + row * ldc + column
        if column + 8 <= columns {
            UnsafeMutableRawPointer(q).storeBytes(of: v, as: SIMD8<Float>.self)
        } else {
            // leftovers: the valid lanes of the last piece
            for j in 0..<max(0, columns - column) { q[j] = v[j] }
        }
    }
}


/// A register tile of 4 output pixels x `width` output channels: what the convolution's
/// loops need of the 4 x 24, 4 x 16 and 4 x 8 tiles below.
protocol RegisterTile {
    /// Output channels of the tile.
    static var width: Int { get }
    /// Zero (first chunk) or the partial sums in the output.
    init(loading out: UnsafeMutablePointer<Float>, _ e: TileEpilogue)
    /// Adds `sum over p < depth of a_i[p] * b[p, 0..<width]` to pixel i's sums.
    mutating func multiply(_ a0: UnsafePointer<Float>, _ a1: UnsafePointer<Float>, _ a2: UnsafePointer<Float>,
                           _ a3: UnsafePointer<Float>, depth: Int, b: UnsafePointer<Float>)
    /// Finishes (last chunk, adding `residual`'s rows when not nil) and stores the tile.
    func store(_ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue, residual: UnsafePointer<Float>?)
}

extension RegisterTile {
    /// One tile: load or zero, the taps of the chunk (pointers `[tap][4 pixels]`), finish and
    /// store. Not inlined into the blocking loops on purpose: in one big function the
    /// optimiser stopped inlining `store` (a call per tile, with the accumulators spilled).
    @inline(never)
    static func tile(_ pointers: UnsafePointer<UnsafePointer<Float>>, taps: Int, depth: Int, weights: UnsafePointer<Float>,
                     tapStride: Int, out: UnsafeMutablePointer<Float>, _ epilogue: TileEpilogue) {
        var acc = Self(loading: out, epilogue)
        for t in 0..<taps {
            let q = pointers + t * 4
            acc.multiply(q[0], q[1], q[2], q[3], depth: depth, b: weights + t * tapStride)
        }
        acc.store(out, epilogue, residual: epilogue.residual)
    }

    /// `count` whole tiles whose pixels are evenly spaced in the input: tile t's pixel i
    /// reads, for tap k, `depth` floats at `input + (4 t + i) * pixelStep + tapOffsets[k]`
    /// and writes row `4 t + i` of `out` (and reads that row of the epilogue's residual).
    /// For 1x1 stride-1 convolutions (every tile) and for the tiles of other convolutions
    /// that lie in one output row with their patches inside the input: no pointer table and
    /// one epilogue for the run (a tile of a 16-channel 1x1 layer has only 16 x 12 FMAs,
    /// and building its pointers and epilogue had cost a fifth of that).
    @inline(never)
    static func rowTiles(_ input: UnsafePointer<Float>, pixelStep: Int, count: Int, taps: Int, tapOffsets: UnsafePointer<Int>,
                         depth: Int, weights: UnsafePointer<Float>, tapStride: Int, out: UnsafeMutablePointer<Float>,
                         _ epilogue: TileEpilogue, prefetch: WeightPrefetch = .none) {
        // The epilogue is not changed per tile (a copy per tile went through memory);
        // the residual rows are passed beside it.
        let e = epilogue, ldc = e.ldc
        var a = input, o = out, r = e.residual
        var ahead = prefetch
        for _ in 0..<count {
            ahead.step()
            var acc = Self(loading: o, e)
            for k in 0..<taps {
                let q = a + tapOffsets[k]
                acc.multiply(q, q + pixelStep, q + 2 * pixelStep, q + 3 * pixelStep, depth: depth, b: weights + k * tapStride)
            }
            acc.store(o, e, residual: r)
            a += 4 * pixelStep
            o += 4 * ldc
            r = r.map { $0 + 4 * ldc }
        }
    }
}

/// The next weight panel, asked for a few cache lines per tile while the current panel's
/// tiles run from cache. In a network each layer's weights have been evicted since the last
/// image (Lite0 has 13.5 MB of them, L3 is 8 MB), so without this the first tile of every
/// panel waited on memory and the other tiles left the memory bus idle. Measured on the
/// 2-core KVM machine (`layer-profile --cold-weights`, one thread, batch 1): Lite0's blocks
/// took 0.6 ms more in the network than with their weights warm (25.8 against 25.2 ms), the
/// 7 x 7 blocks most; with the prefetch, alternating forward passes in one process, Lite0
/// 1.2-1.7 % faster at batch 1 and 1.0-1.5 % at batch 8, compact 0.3-0.5 % at batch 1.
struct WeightPrefetch {
    var next: UnsafeRawPointer?
    var end: UnsafeRawPointer?
    /// Cache lines per tile.
    var lines: Int

    static var none: WeightPrefetch { WeightPrefetch(next: nil, end: nil, lines: 0) }

    /// `floats` floats from `start`, spread over `tiles` tiles.
    init(_ start: UnsafePointer<Float>, floats: Int, tiles: Int) {
        next = UnsafeRawPointer(start)
        end = UnsafeRawPointer(start + floats)
        let total = (floats * 4 + 63) / 64 + 1  // + 1: `start` need not begin a line
        lines = (total + max(tiles, 1) - 1) / max(tiles, 1)
    }

    init(next: UnsafeRawPointer?, end: UnsafeRawPointer?, lines: Int) {
        self.next = next; self.end = end; self.lines = lines
    }

    /// Asks for the next `lines` cache lines, none past the end.
    @inline(__always)
    mutating func step() {
        guard var p = next, let end else { return }
        for _ in 0..<lines where p < end {
            vinspect_prefetch(p)
            p += 64
        }
        next = p
    }
}

/// A run of whole tiles for ``RegisterTile/rowTiles(_:pixelStep:count:taps:tapOffsets:depth:weights:tapStride:out:_:)``
/// (`count > 0`), or one tile whose pointers are in the table (`count == 0`).
struct TileRun {
    var tile: Int
    var count: Int
    var input: UnsafePointer<Float>
}

/// The 4 x 24 register tile.
typealias Accumulators24 = Tile4x24

extension Tile4x24: RegisterTile {
    static var width: Int { 24 }

    @inline(__always)
    init(loading out: UnsafeMutablePointer<Float>, _ e: TileEpilogue) {
        self.init()
        if e.first {
            c00 = .zero; c01 = .zero; c02 = .zero; c10 = .zero; c11 = .zero; c12 = .zero
            c20 = .zero; c21 = .zero; c22 = .zero; c30 = .zero; c31 = .zero; c32 = .zero
        } else if e.rows == 4 && (e.columns == 24 || e.columns == 16) {
            let p = UnsafePointer(out), ldc = e.ldc, third = e.columns == 24
            c00 = load8(p); c01 = load8(p + 8); c02 = third ? load8(p + 16) : .zero
            c10 = load8(p + ldc); c11 = load8(p + ldc + 8); c12 = third ? load8(p + ldc + 16) : .zero
            c20 = load8(p + 2 * ldc); c21 = load8(p + 2 * ldc + 8); c22 = third ? load8(p + 2 * ldc + 16) : .zero
            c30 = load8(p + 3 * ldc); c31 = load8(p + 3 * ldc + 8); c32 = third ? load8(p + 3 * ldc + 16) : .zero
        } else {
            self = Accumulators24.loadingEdge(out, e)
        }
    }

    /// The partial sums of a tile with missing pixels or channels (zero there).
    @inline(never)
    static func loadingEdge(_ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue) -> Accumulators24 {
        let p = UnsafePointer(out), r = e.rows
        func piece(_ row: Int, _ column: Int) -> SIMD8<Float> { row < r ? e.load(p, row: row, column: column) : .zero }
        return Accumulators24(c00: piece(0, 0), c01: piece(0, 8), c02: piece(0, 16), c10: piece(1, 0), c11: piece(1, 8),
                              c12: piece(1, 16), c20: piece(2, 0), c21: piece(2, 8), c22: piece(2, 16), c30: piece(3, 0),
                              c31: piece(3, 8), c32: piece(3, 16))
    }

    @inline(__always)
    func store(_ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue, residual: UnsafePointer<Float>?) {
        // Fast path: 4 pixels, 16 or 24 channels (a 16-channel tail skips the third piece).
        guard e.rows == 4 && (e.columns == 24 || e.columns == 16) && (e.clamps || !e.last) else {
            // The slow path works on a copy made here, so that the accumulators stay in
            // registers on the fast path (passing `self` to a non-inlined method had them
            // stored to the stack after every tile, whichever path ran).
            var copy = self, edge = e
            edge.residual = residual
            withUnsafePointer(to: &copy) { Self.storeEdge($0, out, edge) }
            return
        }
        let ldc = e.ldc, third = e.columns == 24
        if e.last {
            // Full tile, clamp activation: bias, residual and clamp on the registers.
            var d00 = c00, d01 = c01, d02 = c02, d10 = c10, d11 = c11, d12 = c12
            var d20 = c20, d21 = c21, d22 = c22, d30 = c30, d31 = c31, d32 = c32
            if let bias = e.bias {
                let b0 = load8(bias), b1 = load8(bias + 8), b2 = third ? load8(bias + 16) : .zero
                d00 += b0; d01 += b1; d02 += b2; d10 += b0; d11 += b1; d12 += b2
                d20 += b0; d21 += b1; d22 += b2; d30 += b0; d31 += b1; d32 += b2
            }
            if let r = residual {
                d00 += load8(r); d01 += load8(r + 8)
                d10 += load8(r + ldc); d11 += load8(r + ldc + 8)
                d20 += load8(r + 2 * ldc); d21 += load8(r + 2 * ldc + 8)
                d30 += load8(r + 3 * ldc); d31 += load8(r + 3 * ldc + 8)
                if third {
                    d02 += load8(r + 16); d12 += load8(r + ldc + 16); d22 += load8(r + 2 * ldc + 16)
                    d32 += load8(r + 3 * ldc + 16)
                }
            }
            let lo = e.lower, hi = e.upper
            @_transparent func clamp(_ v: SIMD8<Float>) -> SIMD8<Float> { clamp8(v, lo, hi) }
            store8(clamp(d00), out); store8(clamp(d01), out + 8)
            store8(clamp(d10), out + ldc); store8(clamp(d11), out + ldc + 8)
            store8(clamp(d20), out + 2 * ldc); store8(clamp(d21), out + 2 * ldc + 8)
            store8(clamp(d30), out + 3 * ldc); store8(clamp(d31), out + 3 * ldc + 8)
            if third {
                store8(clamp(d02), out + 16); store8(clamp(d12), out + ldc + 16)
                store8(clamp(d22), out + 2 * ldc + 16); store8(clamp(d32), out + 3 * ldc + 16)
            }
        } else {
            store8(c00, out); store8(c01, out + 8)
            store8(c10, out + ldc); store8(c11, out + ldc + 8)
            store8(c20, out + 2 * ldc); store8(c21, out + 2 * ldc + 8)
            store8(c30, out + 3 * ldc); store8(c31, out + 3 * ldc + 8)
            if third {
                store8(c02, out + 16); store8(c12, out + ldc + 16); store8(c22, out + 2 * ldc + 16)
                store8(c32, out + 3 * ldc + 16)
            }
        }
    }

    /// Tiles with missing pixels or channels, and activations that are not a clamp.
    @inline(never)
    static func storeEdge(_ tile: UnsafePointer<Self>, _ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue) {
        tile.pointee.storeEdgeValues(out, e)
    }

    @inline(__always)
    func storeEdgeValues(_ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue) {
        let b0 = e.biasPiece(0), b1 = e.biasPiece(8), b2 = e.biasPiece(16)
        e.store(c00, b0, out, row: 0, column: 0); e.store(c01, b1, out, row: 0, column: 8); e.store(c02, b2, out, row: 0, column: 16)
        e.store(c10, b0, out, row: 1, column: 0); e.store(c11, b1, out, row: 1, column: 8); e.store(c12, b2, out, row: 1, column: 16)
        e.store(c20, b0, out, row: 2, column: 0); e.store(c21, b1, out, row: 2, column: 8); e.store(c22, b2, out, row: 2, column: 16)
        e.store(c30, b0, out, row: 3, column: 0); e.store(c31, b1, out, row: 3, column: 8); e.store(c32, b2, out, row: 3, column: 16)
    }
}

extension Accumulators24 {
    /// A tile with one valid pixel (the last tile of a map of 4k + 1 pixels: a 7 x 7 map at
    /// batch 1), for two 24-wide panels at once. Run as a 4-pixel tile it costs as much as a
    /// full one (1/13 of a 7 x 7 layer's time); one pixel of one panel has only 3 running
    /// sums, which wait on the FMA latency; two panels give 6, enough to issue an FMA per
    /// cycle. Each sum is accumulated in the same order as in the 4-pixel tile, so results
    /// are identical bit for bit whichever tiles a pixel falls in (band by band, threads).
    /// `weights.1` may equal `weights.0` (an odd panel count): the same values are stored twice.
    @inline(never)
    static func singlePixel(_ pointers: UnsafePointer<UnsafePointer<Float>>, taps: Int, depth: Int, tapStride: Int,
                            weights: (UnsafePointer<Float>, UnsafePointer<Float>),
                            out: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>), _ e: (TileEpilogue, TileEpilogue)) {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>()
        var t0 = SIMD8<Float>(), t1 = SIMD8<Float>(), t2 = SIMD8<Float>()
        if !e.0.first {
            s0 = e.0.load(out.0, row: 0, column: 0); s1 = e.0.load(out.0, row: 0, column: 8); s2 = e.0.load(out.0, row: 0, column: 16)
            t0 = e.1.load(out.1, row: 0, column: 0); t1 = e.1.load(out.1, row: 0, column: 8); t2 = e.1.load(out.1, row: 0, column: 16)
        }
        for t in 0..<taps {
            let a = pointers[t * 4]
            var b = weights.0 + t * tapStride, c = weights.1 + t * tapStride
            for p in 0..<depth {
                let v = SIMD8<Float>(repeating: a[p])
                s0 = s0.addingProduct(v, load8(b)); s1 = s1.addingProduct(v, load8(b + 8)); s2 = s2.addingProduct(v, load8(b + 16))
                t0 = t0.addingProduct(v, load8(c)); t1 = t1.addingProduct(v, load8(c + 8)); t2 = t2.addingProduct(v, load8(c + 16))
                b += 24
                c += 24
            }
        }
        e.0.store(s0, e.0.biasPiece(0), out.0, row: 0, column: 0)
        e.0.store(s1, e.0.biasPiece(8), out.0, row: 0, column: 8)
        e.0.store(s2, e.0.biasPiece(16), out.0, row: 0, column: 16)
        e.1.store(t0, e.1.biasPiece(0), out.1, row: 0, column: 0)
        e.1.store(t1, e.1.biasPiece(8), out.1, row: 0, column: 8)
        e.1.store(t2, e.1.biasPiece(16), out.1, row: 0, column: 16)
    }
}

/// `v` clamped to `lo...hi` by compare-and-blend: two vector ops (`clamped` goes lane by lane).
@_transparent
private func clamp8(_ v: SIMD8<Float>, _ lo: SIMD8<Float>, _ hi: SIMD8<Float>) -> SIMD8<Float> {
    v.replacing(with: lo, where: v .< lo).replacing(with: hi, where: v .> hi)
}


/// The 4 x 16 register tile, for a last panel of 9-16 output channels: 8 accumulators, two
/// weight loads and four broadcasts per eight FMAs (enough independent sums to hide the FMA
/// latency, unlike the 4 x 8 tile).
typealias Accumulators16 = Tile4x16

extension Tile4x16: RegisterTile {
    static var width: Int { 16 }

    @inline(__always)
    init(loading out: UnsafeMutablePointer<Float>, _ e: TileEpilogue) {
        self.init()
        let p = UnsafePointer(out)
        if e.first {
            c00 = .zero; c01 = .zero; c10 = .zero; c11 = .zero; c20 = .zero; c21 = .zero; c30 = .zero; c31 = .zero
        } else if e.rows == 4 && e.columns == 16 {
            let ldc = e.ldc
            c00 = load8(p); c01 = load8(p + 8); c10 = load8(p + ldc); c11 = load8(p + ldc + 8)
            c20 = load8(p + 2 * ldc); c21 = load8(p + 2 * ldc + 8); c30 = load8(p + 3 * ldc); c31 = load8(p + 3 * ldc + 8)
        } else {
            self = Accumulators16.loadingEdge(out, e)
        }
    }

    /// The partial sums of a tile with missing pixels or channels (zero there); out of line
    /// so that the usual path above inlines into the tile.
    @inline(never)
    static func loadingEdge(_ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue) -> Accumulators16 {
        let p = UnsafePointer(out), r = e.rows
        func piece(_ row: Int, _ column: Int) -> SIMD8<Float> { row < r ? e.load(p, row: row, column: column) : .zero }
        return Accumulators16(c00: piece(0, 0), c01: piece(0, 8), c10: piece(1, 0), c11: piece(1, 8),
                              c20: piece(2, 0), c21: piece(2, 8), c30: piece(3, 0), c31: piece(3, 8))
    }

    @_transparent
    func store(_ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue, residual: UnsafePointer<Float>?) {
        guard e.rows == 4 && e.columns == 16 && (e.clamps || !e.last) else {
            // The slow path works on a copy made here, so that the accumulators stay in
            // registers on the fast path (passing `self` to a non-inlined method had them
            // stored to the stack after every tile, whichever path ran).
            var copy = self, edge = e
            edge.residual = residual
            withUnsafePointer(to: &copy) { Self.storeEdge($0, out, edge) }
            return
        }
        let ldc = e.ldc
        var d00 = c00, d01 = c01, d10 = c10, d11 = c11, d20 = c20, d21 = c21, d30 = c30, d31 = c31
        if e.last {
            if let bias = e.bias {
                let b0 = load8(bias), b1 = load8(bias + 8)
                d00 += b0; d01 += b1; d10 += b0; d11 += b1; d20 += b0; d21 += b1; d30 += b0; d31 += b1
            }
            if let r = residual {
                d00 += load8(r); d01 += load8(r + 8); d10 += load8(r + ldc); d11 += load8(r + ldc + 8)
                d20 += load8(r + 2 * ldc); d21 += load8(r + 2 * ldc + 8)
                d30 += load8(r + 3 * ldc); d31 += load8(r + 3 * ldc + 8)
            }
            let lo = e.lower, hi = e.upper
            d00 = clamp8(d00, lo, hi); d01 = clamp8(d01, lo, hi); d10 = clamp8(d10, lo, hi); d11 = clamp8(d11, lo, hi)
            d20 = clamp8(d20, lo, hi); d21 = clamp8(d21, lo, hi); d30 = clamp8(d30, lo, hi); d31 = clamp8(d31, lo, hi)
        }
        store8(d00, out); store8(d01, out + 8); store8(d10, out + ldc); store8(d11, out + ldc + 8)
        store8(d20, out + 2 * ldc); store8(d21, out + 2 * ldc + 8); store8(d30, out + 3 * ldc); store8(d31, out + 3 * ldc + 8)
    }

    /// Tiles with missing pixels or channels, and activations that are not a clamp.
    @inline(never)
    static func storeEdge(_ tile: UnsafePointer<Self>, _ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue) {
        tile.pointee.storeEdgeValues(out, e)
    }

    @inline(__always)
    func storeEdgeValues(_ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue) {
        let b0 = e.biasPiece(0), b1 = e.biasPiece(8)
        e.store(c00, b0, out, row: 0, column: 0); e.store(c01, b1, out, row: 0, column: 8)
        e.store(c10, b0, out, row: 1, column: 0); e.store(c11, b1, out, row: 1, column: 8)
        e.store(c20, b0, out, row: 2, column: 0); e.store(c21, b1, out, row: 2, column: 8)
        e.store(c30, b0, out, row: 3, column: 0); e.store(c31, b1, out, row: 3, column: 8)
    }
}

/// The 4 x 8 register tile, for the last 8 output channels.
typealias Accumulators8 = Tile4x8

extension Tile4x8: RegisterTile {
    static var width: Int { 8 }

    @inline(__always)
    init(loading out: UnsafeMutablePointer<Float>, _ e: TileEpilogue) {
        self.init()
        if e.first {
            c0 = .zero; c1 = .zero; c2 = .zero; c3 = .zero
        } else if e.rows == 4 && e.columns == 8 {
            let p = UnsafePointer(out), ldc = e.ldc
            c0 = load8(p); c1 = load8(p + ldc); c2 = load8(p + 2 * ldc); c3 = load8(p + 3 * ldc)
        } else {
            let p = UnsafePointer(out), r = e.rows
            c0 = e.load(p, row: 0, column: 0)
            c1 = r > 1 ? e.load(p, row: 1, column: 0) : .zero
            c2 = r > 2 ? e.load(p, row: 2, column: 0) : .zero
            c3 = r > 3 ? e.load(p, row: 3, column: 0) : .zero
        }
    }

    @_transparent
    func store(_ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue, residual: UnsafePointer<Float>?) {
        guard e.rows == 4 && e.columns == 8 && (e.clamps || !e.last) else {
            // The slow path works on a copy made here, so that the accumulators stay in
            // registers on the fast path (passing `self` to a non-inlined method had them
            // stored to the stack after every tile, whichever path ran).
            var copy = self, edge = e
            edge.residual = residual
            withUnsafePointer(to: &copy) { Self.storeEdge($0, out, edge) }
            return
        }
        let ldc = e.ldc
        var d0 = c0, d1 = c1, d2 = c2, d3 = c3
        if e.last {
            if let bias = e.bias {
                let b = load8(bias)
                d0 += b; d1 += b; d2 += b; d3 += b
            }
            if let r = residual {
                d0 += load8(r); d1 += load8(r + ldc); d2 += load8(r + 2 * ldc); d3 += load8(r + 3 * ldc)
            }
            let lo = e.lower, hi = e.upper
            d0 = clamp8(d0, lo, hi); d1 = clamp8(d1, lo, hi); d2 = clamp8(d2, lo, hi); d3 = clamp8(d3, lo, hi)
        }
        store8(d0, out); store8(d1, out + ldc); store8(d2, out + 2 * ldc); store8(d3, out + 3 * ldc)
    }

    @inline(never)
    static func storeEdge(_ tile: UnsafePointer<Self>, _ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue) {
        tile.pointee.storeEdgeValues(out, e)
    }

    @inline(__always)
    func storeEdgeValues(_ out: UnsafeMutablePointer<Float>, _ e: TileEpilogue) {
        let b = e.biasPiece(0)
        e.store(c0, b, out, row: 0, column: 0); e.store(c1, b, out, row: 1, column: 0)
        e.store(c2, b, out, row: 2, column: 0); e.store(c3, b, out, row: 3, column: 0)
    }
}
