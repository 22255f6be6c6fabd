// backbone-bench: our ResNet-18 and EfficientNet-Lite0 forward next to ONNX Runtime on the
// identical network and weights, in one run.
//
// For each architecture it runs Scripts/onnx_backbones.py, which writes (or reads) the
// weights, builds the ONNX graph, times ONNX Runtime at the requested batches and thread
// counts, runs the numpy reference on a seeded input, and saves input and outputs. This
// program then loads the same weights through the project's importer, runs the same input,
// prints the agreement with ONNX Runtime and with the numpy reference, times its own
// forward at the same batches and threads, and prints images/s with the ratio.
//
//   swift run -c release backbone-bench [--archs resnet18,efficientnet-lite0]
//       [--lite0-weights efficientnet-lite0-57934424.pth] [--threads 1,2] [--batches 1,8]
//       [--min-time 2] [--rounds 3] [--python python3]
//
// Timing is interleaved: after the agreement check, each round times ONNX Runtime (a
// fresh script run, no check) and then ours, cell by cell; each side keeps its best
// round per cell. Other processes on a shared machine then slow both sides alike
// instead of whichever happened to run during a busy minute.
import Foundation
import ModelFile
import NeuralNet
import TensorCore
import VisualInspection

struct Options {
    var architectures = ["resnet18", "efficientnet-lite0"]
    var lite0Weights: String? = nil
    var threads = [1, 2]
    var batches = [1, 8]
    var minTime = 2.0
    var python = "python3"
    var compactOnly = false
    var rounds = 3

    init(_ arguments: [String]) {
        var i = 0
        func value() -> String {
            i += 1
            guard i < arguments.count else { fatalError("missing value after \(arguments[i - 1])") }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--archs": architectures = value().split(separator: ",").map(String.init)
            case "--lite0-weights": lite0Weights = value()
            case "--threads": threads = value().split(separator: ",").compactMap { Int($0) }
            case "--batches": batches = value().split(separator: ",").compactMap { Int($0) }
            case "--min-time": minTime = Double(value()) ?? 2
            case "--python": python = value()
            case "--rounds": rounds = max(1, Int(value()) ?? 3)
            default: fatalError("unknown option \(arguments[i])")
            }
            i += 1
        }
    }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Scripts")
let work = FileManager.default.temporaryDirectory.appendingPathComponent("backbone-bench-\(getpid())")
try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: work) }

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// Runs a command, echoing its output indented; returns the output.
func run(_ executable: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [executable] + arguments
    var environment = ProcessInfo.processInfo.environment
    // FACTS.md: these slow a current numpy/OpenBLAS; unset for the peer only.
    environment.removeValue(forKey: "OPENBLAS_CORETYPE")
    environment.removeValue(forKey: "OPENBLAS_L2_SIZE")
    process.environment = environment
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    for line in text.split(separator: "\n") where !line.hasPrefix("{") { print("    | \(line)") }
    guard process.terminationStatus == 0 else { throw NSError(domain: "bench", code: Int(process.terminationStatus)) }
    return text
}

/// `[N, C, H, W]` to `[N, H, W, C]`.
func nchwToNHWC(_ t: Tensor) -> Tensor {
    let (n, c, h, w) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
    let s = t.scalars
    return Tensor(uninitializedShape: [n, h, w, c]) { out in
        for b in 0..<n { for ch in 0..<c { for y in 0..<h { for x in 0..<w {
            out[((b * h + y) * w + x) * c + ch] = s[((b * c + ch) * h + y) * w + x]
        } } } }
    }
}

/// Largest absolute difference, and that relative to the largest magnitude of `reference`.
func agreement(_ ours: Tensor, _ reference: Tensor) -> (absolute: Float, relative: Float) {
    precondition(ours.shape == reference.shape, "shapes \(ours.shape) vs \(reference.shape)")
    let absolute = zip(ours.scalars, reference.scalars).map { abs($0 - $1) }.max() ?? 0
    let scale = reference.scalars.map { abs($0) }.max() ?? 1
    return (absolute, absolute / max(scale, 1e-12))
}

/// Images per second of the frozen network at one batch size on one pool.
func throughput(_ network: FrozenBackbone, batch: Int, pool: ThreadPool, minTime: Double) -> Double {
    var generator = Xoshiro256(seed: 7)
    let input = Tensor(randomNormal: [batch, 224, 224, 3], using: &generator)
    _ = network.features(input, pool: pool)  // warm-up: page in weights, spin up workers
    var times: [Double] = []
    let start = now()
    while now() - start < minTime || times.count < 3 {
        let t0 = now()
        _ = network.features(input, pool: pool)
        times.append(now() - t0)
    }
    times.sort()
    return Double(batch) / times[times.count / 2]  // median, as the peer reports
}

print("backbone-bench: \(ProcessInfo.processInfo.processorCount) cores, build features \(CPUFeatures.buildFeatures.joined(separator: " "))")
var rows: [(String, Int, Int, Double, Double)] = []
for architectureName in options.architectures {
    guard let architecture = BackboneArchitecture(rawValue: architectureName) else { fatalError("unknown architecture \(architectureName)") }
    print("\n== \(architectureName)")
    let outputs = work.appendingPathComponent("\(architectureName)-outputs.safetensors").path
    var weights = work.appendingPathComponent("\(architectureName)-weights.safetensors").path
    var peerArguments = [scripts.appendingPathComponent("onnx_backbones.py").path, "--arch", architectureName,
                         "--threads", options.threads.map(String.init).joined(separator: ","),
                         "--batch", options.batches.map(String.init).joined(separator: ","),
                         "--min-time", String(options.minTime), "--check-batch", "2", "--save-outputs", outputs]
    var photoNames: [String] = []
    if architecture == .efficientNetLite0, let real = options.lite0Weights {
        // Real ImageNet weights: check on natural photographs (scikit-image's samples),
        // preprocessed by the reference script, with the reference's top-5 beside ours.
        weights = real
        let photos = work.appendingPathComponent("photos.npy").path
        print("  numpy reference on scikit-image photographs:")
        _ = try run(options.python, [scripts.appendingPathComponent("reference_nets.py").path, "photos", "--weights", real,
                                     "--save-input", photos])
        photoNames = ["chelsea (cat)", "coffee", "astronaut", "rocket"]
        peerArguments += ["--weights", real, "--input", photos]
    } else {
        peerArguments += ["--weights", weights, "--random-seed", "0"]
    }
    /// The peer's images/s per "threads x batch" cell from one script run.
    func peerTimings(_ arguments: [String]) throws -> [String: Double] {
        let report = try run(options.python, arguments)
        guard let jsonLine = report.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let json = try JSONSerialization.jsonObject(with: Data(jsonLine.utf8)) as? [String: Any],
              let timings = json["timings"] as? [[String: Any]] else { fatalError("no JSON report from the peer script") }
        var peer: [String: Double] = [:]
        for t in timings where (t["graph"] as? String) == "logits" {
            peer["\(t["threads"] as? Int ?? 0)x\(t["batch"] as? Int ?? 0)"] = t["images_per_s"] as? Double
        }
        return peer
    }
    // The first run writes the weights and checks; its timings count as round 1.
    var peer = try peerTimings(peerArguments)

    let network = try BackboneStore.importWeights(from: weights, architecture: architecture)
    let frozen = network.frozen()
    let saved = Dictionary(uniqueKeysWithValues: try WeightImporter.load(contentsOfFile: outputs).map {
        ($0.name, Tensor($0.scalars, shape: $0.shape))
    })
    let features = frozen.features(nchwToNHWC(saved["input"]!))
    if !photoNames.isEmpty {
        print("  our top-5 ImageNet classes (index probability):")
        let k = features.logits!.shape[1]
        let logits = features.logits!.scalars
        for (row, name) in photoNames.enumerated() {
            let scores = Array(logits[(row * k)..<((row + 1) * k)])
            let top = scores.max()!
            let exps = scores.map { exp(Double($0 - top)) }
            let total = exps.reduce(0, +)
            let best = exps.indices.sorted { exps[$0] > exps[$1] }.prefix(5)
            print("    \(name.padding(toLength: 14, withPad: " ", startingAt: 0)) " + best.map { String(format: "%d %.3f", $0, exps[$0] / total) }.joined(separator: ", "))
        }
    }
    print("  agreement with the same input (batch \(saved["input"]!.shape[0])), max abs / relative to the largest value:")
    for (name, ours) in [("logits", features.logits!), ("embedding", features.embedding), ("feat_s4", features.maps[0]),
                         ("feat_s8", features.maps[1]), ("feat_s16", features.maps[2])] {
        func reference(_ key: String) -> Tensor { let t = saved[key]!; return t.rank == 4 ? nchwToNHWC(t) : t }
        let ort = agreement(ours, reference(name)), numpy = agreement(ours, reference("ref_" + name))
        print("    \(name.padding(toLength: 10, withPad: " ", startingAt: 0)) vs ONNX Runtime \(String(format: "%.2e / %.2e", ort.absolute, ort.relative))"
              + "   vs numpy \(String(format: "%.2e / %.2e", numpy.absolute, numpy.relative))")
    }
    var ours: [String: Double] = [:]
    let pools = Dictionary(uniqueKeysWithValues: options.threads.map { ($0, ThreadPool(threadCount: $0)) })
    for round in 1...options.rounds {
        if round > 1 {
            // The weights exist now: time only (no reference run, no outputs).
            let timingArguments = [scripts.appendingPathComponent("onnx_backbones.py").path, "--arch", architectureName,
                                   "--weights", weights, "--threads", options.threads.map(String.init).joined(separator: ","),
                                   "--batch", options.batches.map(String.init).joined(separator: ","),
                                   "--min-time", String(options.minTime), "--skip-check"]
                + (architecture == .efficientNetLite0 && options.lite0Weights != nil ? ["--input", work.appendingPathComponent("photos.npy").path] : [])
            for (cell, value) in try peerTimings(timingArguments) { peer[cell] = max(peer[cell] ?? 0, value) }
        }
        var line: [String] = []
        for threads in options.threads {
            for batch in options.batches {
                let value = throughput(frozen, batch: batch, pool: pools[threads]!, minTime: options.minTime)
                ours["\(threads)x\(batch)", default: 0] = max(ours["\(threads)x\(batch)"] ?? 0, value)
                line.append(String(format: "%dt b%d %.1f", threads, batch, value))
            }
        }
        print("  round \(round): ours images/s " + line.joined(separator: ", "))
    }
    for threads in options.threads {
        for batch in options.batches {
            rows.append((architectureName, batch, threads, ours["\(threads)x\(batch)"] ?? .nan, peer["\(threads)x\(batch)"] ?? .nan))
        }
    }
}

print("\n== images/s at 224x224 (median batch time, best of \(options.rounds) interleaved rounds), ours vs ONNX Runtime on the same network and weights")
print("arch                batch threads      ours       ORT   ratio")
for (name, batch, threads, ours, ort) in rows {
    print("\(name.padding(toLength: 19, withPad: " ", startingAt: 0)) \(String(format: "%5d %7d %9.1f %9.1f %6.2fx", batch, threads, ours, ort, ours / ort))")
}
