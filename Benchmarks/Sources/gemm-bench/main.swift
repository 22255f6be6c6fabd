// gemm-bench: TensorCore's sgemm against the CPU's fp32 FMA peak and against numpy.
//
// In one run it prints:
//   1. the fp32 FMA peak, measured by tiny register-resident FMA loops on 1 and 2 threads;
//   2. sgemm GFLOP/s at 512^3 and at the convolution-like M=64, N=3136, K=576, on 1 and 2
//      threads, as % of that peak;
//   3. numpy.matmul at the same sizes (Scripts/numpy_gemm.py in a subprocess, with
//      OPENBLAS_NUM_THREADS = 1 and 2 and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed from
//      its environment), which OpenBLAS kernel it used, and the ratio ours / numpy.
//
// Options: --seconds S (time per measurement, default 1), --no-numpy,
//          --python PATH (default python3), --sizes MxNxK,... (instead of the two
//          defaults), --no-peak (skip part 1; percentages then use a peak of 1 GFLOP/s
//          and are meaningless).
import Foundation
import TensorCore

// MARK: - Options

/// Command-line options.
struct Options: Sendable {
    var secondsPerMeasurement = 1.0
    var runNumpy = true
    var python = "python3"
    var sizes: [[Int]] = [[512, 512, 512], [64, 3136, 576]]
    var skipPeak = false

    static func parse() -> Options {
        var options = Options()
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--seconds": options.secondsPerMeasurement = arguments.next().flatMap(Double.init) ?? 1
            case "--no-numpy": options.runNumpy = false
            case "--python": options.python = arguments.next() ?? options.python
            case "--sizes":
                options.sizes = (arguments.next() ?? "").split(separator: ",").map {
                    $0.split(separator: "x").compactMap { Int($0) }
                }
            case "--no-peak": options.skipPeak = true
            default:
                print("usage: gemm-bench [--seconds S] [--no-numpy] [--python PATH] [--sizes MxNxK,...] [--no-peak]")
                exit(2)
            }
        }
        return options
    }
}

let options = Options.parse()
let secondsPerMeasurement = options.secondsPerMeasurement

do {
    try CPUFeatures.check()
} catch {
    print("gemm-bench: \(error)")
    exit(1)
}

// MARK: - Timing

/// The best time of repeated runs of `body` within about `seconds` (after one warm-up run).
func bestTime(seconds: Double = secondsPerMeasurement, _ body: () -> Void) -> Double {
    body()
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
    var best = Double.infinity
    repeat {
        let start = clock.now
        body()
        let elapsed = start.duration(to: clock.now)
        best = min(best, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    } while clock.now < deadline
    return best
}

func format(_ value: Double, _ decimals: Int = 1) -> String { String(format: "%.\(decimals)f", value) }
func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
}

// MARK: - 1. FMA peak

/// 16 independent `SIMD16` accumulators, one fused multiply-add each per iteration: the
/// loop is bound by FMA throughput on AVX-512 (16 of 32 zmm registers).
@inline(never)
func fmaLoopSIMD16(iterations: Int, seed: Float) -> Float {
    var a0 = SIMD16<Float>(repeating: seed), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3
    var a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7
    var a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11
    var a12 = a0 + 12, a13 = a0 + 13, a14 = a0 + 14, a15 = a0 + 15
    let x = SIMD16<Float>(repeating: 0.999_999), y = SIMD16<Float>(repeating: 1e-7)
    for _ in 0..<iterations {
        a0 = a0.addingProduct(x, y); a1 = a1.addingProduct(x, y); a2 = a2.addingProduct(x, y); a3 = a3.addingProduct(x, y)
        a4 = a4.addingProduct(x, y); a5 = a5.addingProduct(x, y); a6 = a6.addingProduct(x, y); a7 = a7.addingProduct(x, y)
        a8 = a8.addingProduct(x, y); a9 = a9.addingProduct(x, y); a10 = a10.addingProduct(x, y); a11 = a11.addingProduct(x, y)
        a12 = a12.addingProduct(x, y); a13 = a13.addingProduct(x, y); a14 = a14.addingProduct(x, y); a15 = a15.addingProduct(x, y)
    }
    return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + a12 + a13 + a14 + a15).sum()
}

/// 12 independent `SIMD8` accumulators: the register-resident variant for AVX2 machines
/// (12 of 16 ymm registers), where 16 `SIMD16` accumulators would spill to memory.
@inline(never)
func fmaLoopSIMD8(iterations: Int, seed: Float) -> Float {
    var a0 = SIMD8<Float>(repeating: seed), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3
    var a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7
    var a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11
    let x = SIMD8<Float>(repeating: 0.999_999), y = SIMD8<Float>(repeating: 1e-7)
    for _ in 0..<iterations {
        a0 = a0.addingProduct(x, y); a1 = a1.addingProduct(x, y); a2 = a2.addingProduct(x, y); a3 = a3.addingProduct(x, y)
        a4 = a4.addingProduct(x, y); a5 = a5.addingProduct(x, y); a6 = a6.addingProduct(x, y); a7 = a7.addingProduct(x, y)
        a8 = a8.addingProduct(x, y); a9 = a9.addingProduct(x, y); a10 = a10.addingProduct(x, y); a11 = a11.addingProduct(x, y)
    }
    return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).sum()
}

/// GFLOP/s of `loop` run on `threads` threads at once (each thread its own loop).
func peak(
    threads: Int, flopsPerIteration: Double, _ loop: @escaping @Sendable (Int, Float) -> Float
) -> Double {
    let iterations = 4_000_000
    let pool = ThreadPool(threadCount: threads)
    let sink = UnsafeMutablePointer<Float>.allocate(capacity: threads)
    defer { sink.deallocate() }
    let shared = UnsafeSharedPointer(sink)
    let time = bestTime(seconds: secondsPerMeasurement / 2) {
        pool.parallelFor(threads) { thread in shared.pointer[thread] = loop(iterations, Float(thread)) }
    }
    return Double(threads) * Double(iterations) * flopsPerIteration / time / 1e9
}

let cpuName = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
    .split(separator: "\n").first { $0.hasPrefix("model name") }?
    .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
/// The 1-minute load average (lags by about a minute; see `busyPercent` for the present).
func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?
        .split(separator: " ").first.map(String.init) ?? "?"
}

/// The share of all cores' time spent busy over the next `seconds`, from /proc/stat;
/// measured while this program sleeps, so it is other processes' load. Nil off Linux.
func busyPercent(over seconds: Double = 1) -> Double? {
    func sample() -> (busy: Double, total: Double)? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = stat.split(separator: "\n").first, line.hasPrefix("cpu ")
        else { return nil }
        let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard fields.count >= 5 else { return nil }
        let total = fields.prefix(8).reduce(0, +)
        return (total - fields[3] - fields[4], total)  // minus idle and iowait
    }
    guard let before = sample() else { return nil }
    Thread.sleep(forTimeInterval: seconds)
    guard let after = sample(), after.total > before.total else { return nil }
    return 100 * (after.busy - before.busy) / (after.total - before.total)
}

let busy = busyPercent()
print("gemm-bench: \(cpuName), \(ProcessInfo.processInfo.activeProcessorCount) cores; "
    + "other processes' CPU use before the run: \(busy.map { format($0, 0) + " %" } ?? "unknown"), "
    + "load average \(loadAverage())")
if let busy, busy > 10 {
    print("warning: other processes are using the CPU; figures (2-thread ones most) will be low")
}
print("build features: \(CPUFeatures.buildFeatures.joined(separator: " "))")
print("sgemm micro-kernel: \(GEMMKernel.automatic)")
print("")
/// Measures both FMA loops on 1 and 2 threads and prints them; returns the best per thread count.
func measurePeaks() -> [Int: Double] {
    var result: [Int: Double] = [:]
    for threads in [1, 2] {
        let wide = peak(threads: threads, flopsPerIteration: 16 * 16 * 2, fmaLoopSIMD16)
        let narrow = peak(threads: threads, flopsPerIteration: 12 * 8 * 2, fmaLoopSIMD8)
        result[threads] = max(wide, narrow)
        print("   \(threads) thread\(threads > 1 ? "s" : " "): 16 x SIMD16 \(pad(format(wide), 6)) GFLOP/s, "
            + "12 x SIMD8 \(pad(format(narrow), 6)) GFLOP/s -> \(format(result[threads]!)) GFLOP/s")
    }
    return result
}

// Other processes on a shared machine can only lower a measurement, so the peak is
// measured at the start and again at the end of the run, and the larger value is used.
var peaks: [Int: Double] = [1: 1, 2: 1]
if !options.skipPeak {
    print("1. fp32 FMA peak (register-resident FMA loops, best of repeats), at the start")
    peaks = measurePeaks()
}

// MARK: - 2. sgemm

struct Size: Hashable { let m: Int, n: Int, k: Int }
let sizes = options.sizes.map { dims in
    guard dims.count == 3, dims.allSatisfy({ $0 > 0 }) else {
        print("gemm-bench: --sizes wants MxNxK triples of positive integers, e.g. 512x512x512")
        exit(2)
    }
    return Size(m: dims[0], n: dims[1], k: dims[2])
}

/// GFLOP/s of `C = A * B` (row-major, no transposes, beta = 0) on a pool of `threads`.
func measureSGEMM(_ size: Size, threads: Int) -> Double {
    var rng = Xoshiro256(seed: 42)
    let a = Tensor(randomNormal: [size.m, size.k], using: &rng)
    let b = Tensor(randomNormal: [size.k, size.n], using: &rng)
    var c = Tensor(zeros: [size.m, size.n])
    let pool = ThreadPool(threadCount: threads)
    let time = a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            c.withUnsafeMutableBufferPointer { c in
                bestTime {
                    sgemm(
                        transposeA: false, transposeB: false, m: size.m, n: size.n, k: size.k,
                        alpha: 1, a: a.baseAddress, lda: size.k, b: b.baseAddress, ldb: size.n,
                        beta: 0, c: c.baseAddress, ldc: size.n, pool: pool)
                }
            }
        }
    }
    // Spot check against a Double dot product, so a fast wrong kernel cannot pass unnoticed.
    for (i, j) in [(0, 0), (size.m - 1, size.n - 1), (size.m / 2, size.n / 3)] {
        var expected = 0.0
        for p in 0..<size.k { expected += Double(a[i, p]) * Double(b[p, j]) }
        precondition(abs(Double(c[i, j]) - expected) <= 1e-3 * (1 + abs(expected)),
                     "sgemm result wrong at [\(i), \(j)]: \(c[i, j]) vs \(expected)")
    }
    return 2 * Double(size.m * size.n * size.k) / time / 1e9
}

print("")
print("2. sgemm (TensorCore), best of repeats")
var ours: [Size: [Int: Double]] = [:]
for size in sizes {
    for threads in [1, 2] {
        let gflops = measureSGEMM(size, threads: threads)
        ours[size, default: [:]][threads] = gflops
        print("   M=\(size.m) N=\(size.n) K=\(size.k), \(threads) thread\(threads > 1 ? "s" : " "): "
            + "\(pad(format(gflops), 6)) GFLOP/s")
    }
}

// MARK: - 3. numpy

/// Runs Scripts/numpy_gemm.py with `threads` OpenBLAS threads; returns its JSON lines.
func runNumpy(threads: Int) throws -> [[String: Any]] {
    let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Scripts/numpy_gemm.py")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [options.python, script.path] + sizes.flatMap { ["\($0.m)", "\($0.n)", "\($0.k)"] }
    var environment = ProcessInfo.processInfo.environment
    // FACTS.md: these make OpenBLAS pick a kernel or cache size other than its own
    // detection would; the peer must run with its defaults.
    environment["OPENBLAS_CORETYPE"] = nil
    environment["OPENBLAS_L2_SIZE"] = nil
    environment["OPENBLAS_NUM_THREADS"] = "\(threads)"
    environment["OMP_NUM_THREADS"] = "\(threads)"
    environment["MKL_NUM_THREADS"] = "\(threads)"
    process.environment = environment
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw NSError(domain: "gemm-bench", code: Int(process.terminationStatus), userInfo: [
            NSLocalizedDescriptionKey: "\(script.path) exited with status \(process.terminationStatus)",
        ])
    }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}

print("")
if options.runNumpy {
    print("3. numpy.matmul (OpenBLAS; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset), best of repeats")
    var theirs: [Size: [Int: Double]] = [:]
    for threads in [1, 2] {
        do {
            let lines = try runNumpy(threads: threads)
            if let info = lines.first {
                print("   \(threads) thread\(threads > 1 ? "s" : " "): numpy \(info["numpy"] ?? "?"), "
                    + "OpenBLAS kernel \(info["kernel"] ?? "unknown") (via \(info["source"] ?? "?")), "
                    + "threads \(info["threads"] ?? "?"); \(info["config"] ?? "")")
            }
            for line in lines.dropFirst() {
                guard let m = line["m"] as? Int, let n = line["n"] as? Int, let k = line["k"] as? Int,
                    let gflops = line["gflops"] as? Double
                else { continue }
                theirs[Size(m: m, n: n, k: k), default: [:]][threads] = gflops
            }
        } catch {
            print("   numpy peer failed: \(error.localizedDescription)")
        }
    }
    summary(numpy: theirs)
} else {
    print("3. numpy peer skipped (--no-numpy)")
    summary(numpy: [:])
}

/// Re-measures the peak, then prints every figure against it and against numpy.
@MainActor
func summary(numpy theirs: [Size: [Int: Double]]) {
    if !options.skipPeak {
        print("")
        print("   fp32 FMA peak again, at the end:")
        for (threads, value) in measurePeaks() { peaks[threads] = max(peaks[threads]!, value) }
    }
    print("")
    print("Summary (peak = the larger of the two peak measurements: "
        + "1 thread \(format(peaks[1]!)), 2 threads \(format(peaks[2]!)) GFLOP/s)")
    print("   size                 threads   GFLOP/s   % of peak   speed-up   numpy GFLOP/s   ours/numpy")
    for size in sizes {
        for threads in [1, 2] {
            guard let mine = ours[size]?[threads] else { continue }
            let label = "M=\(size.m) N=\(size.n) K=\(size.k)"
            let numpy = theirs[size]?[threads]
            print("   \(label.padding(toLength: 20, withPad: " ", startingAt: 0)) \(pad("\(threads)", 7))"
                + "   \(pad(format(mine), 7))   \(pad(format(100 * mine / peaks[threads]!), 9))"
                + "   \(pad(format(mine / ours[size]![1]!, 2) + "x", 8))"
                + "   \(pad(numpy.map { format($0) } ?? "-", 13))"
                + "   \(pad(numpy.map { format(mine / $0, 2) } ?? "-", 10))")
        }
    }
    print("")
    print("other processes' CPU use after the run: \(busyPercent().map { format($0, 0) + " %" } ?? "unknown")")
}
