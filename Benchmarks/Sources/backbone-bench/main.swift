// backbone-bench: our ResNet-18, EfficientNet-Lite0 and compact forward next to ONNX Runtime
// on the identical network and weights, in one run.
//
// For each architecture it runs Scripts/onnx_backbones.py, which writes (or reads) the
// weights, builds the ONNX graph, times ONNX Runtime at the requested batches and thread
// counts, runs the numpy reference on a seeded input, and saves input and outputs. This
// program then loads the same weights through the project's importer, runs the same input,
// prints the agreement with ONNX Runtime and with the numpy reference, times its own
// forward at the same batches and threads, and prints images/s with the ratio.
//
// The compact network (the project's own, no PyTorch original) goes the other way: this
// program exports its frozen form (weights and a layer description, FrozenExport.swift) and
// Scripts/onnx_frozen.py builds the ONNX graph from that file, times it the same way and
// saves its outputs for a seeded input; there is no numpy reference for it. The shipped
// weights (DefaultBackbone, compact-default.vimodel) are used when found, else seeded random
// ones. --frozen-peer sends ResNet-18 and Lite0 (seeded random weights) the same way, a
// check of the generic exporter against onnx_backbones.py's hand-built graphs.
//
//   swift run -c release backbone-bench [--archs resnet18,efficientnet-lite0,compact]
//       [--lite0-weights efficientnet-lite0-57934424.pth] [--threads 1,2] [--batches 1,8]
//       [--min-time 2] [--rounds 3] [--python python3] [--frozen-peer] [--keep DIR]
//
// Timing is interleaved: after the agreement check, each round times ONNX Runtime (a
// fresh script run, no check) and then ours, cell by cell; each side keeps its best
// round per cell. Other processes on a shared machine then slow both sides alike
// instead of whichever happened to run during a busy minute. The table also gives the
// median of the rounds' own ratios: best against best can pit one side's single fast
// minute against the other's ordinary ones (seen: ONNX Runtime 43.6 images/s in one round,
// 39.3-40.1 in the other four).
import Foundation
import ModelFile
import NeuralNet
import TensorCore
@_spi(Engine) import VisualInspection

struct Options {
    var architectures = ["resnet18", "efficientnet-lite0"]
    var lite0Weights: String? = nil
    var threads = [1, 2]
    var batches = [1, 8]
    var minTime = 2.0
    var python = "python3"
    var rounds = 3
    /// Export every architecture through FrozenExport + onnx_frozen.py (compact always is).
    var frozenPeer = false
    /// Keep the exchanged files (weights, exported models, outputs) here instead of a
    /// temporary directory that is removed at the end.
    var keep: String? = nil

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
            case "--frozen-peer": frozenPeer = true
            case "--keep": keep = value()
            default: fatalError("unknown option \(arguments[i])")
            }
            i += 1
        }
    }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Scripts")
let work = options.keep.map { URL(fileURLWithPath: $0) }
    ?? FileManager.default.temporaryDirectory.appendingPathComponent("backbone-bench-\(getpid())")
try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
defer { if options.keep == nil { try? FileManager.default.removeItem(at: work) } }

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

/// The peer's images/s per "threads x batch" cell from one script run (the timed graph:
/// logits, or the embedding for a frozen network without a classifier).
func peerTimings(_ arguments: [String]) throws -> [String: Double] {
    let report = try run(options.python, arguments)
    guard let jsonLine = report.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
          let json = try JSONSerialization.jsonObject(with: Data(jsonLine.utf8)) as? [String: Any],
          let timings = json["timings"] as? [[String: Any]] else { fatalError("no JSON report from the peer script") }
    var peer: [String: Double] = [:]
    for t in timings where ["logits", "embedding"].contains(t["graph"] as? String ?? "") {
        peer["\(t["threads"] as? Int ?? 0)x\(t["batch"] as? Int ?? 0)"] = t["images_per_s"] as? Double
    }
    return peer
}

let timingOptions = ["--threads", options.threads.map(String.init).joined(separator: ","),
                     "--batch", options.batches.map(String.init).joined(separator: ","),
                     "--min-time", String(options.minTime)]

/// What one architecture brings to the timing rounds.
struct Contender {
    var label: String
    var frozen: FrozenBackbone
    /// ONNX Runtime's images/s from the first (checking) script run: round 1.
    var peer: [String: Double]
    /// The script run of rounds 2 and later (timing only).
    var timingArguments: [String]
}

/// The PyTorch-named networks through onnx_backbones.py, with the numpy reference.
func referencePeer(_ architectureName: String, _ architecture: BackboneArchitecture) throws -> Contender {
    let outputs = work.appendingPathComponent("\(architectureName)-outputs.safetensors").path
    var weights = work.appendingPathComponent("\(architectureName)-weights.safetensors").path
    var peerArguments = [scripts.appendingPathComponent("onnx_backbones.py").path, "--arch", architectureName]
        + timingOptions + ["--check-batch", "2", "--save-outputs", outputs]
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
    // The first run writes the weights and checks; its timings count as round 1.
    let peer = try peerTimings(peerArguments)

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
    // The weights exist now: later rounds only time (no reference run, no outputs).
    let timingArguments = [scripts.appendingPathComponent("onnx_backbones.py").path, "--arch", architectureName,
                           "--weights", weights] + timingOptions + ["--skip-check"]
        + (!photoNames.isEmpty ? ["--input", work.appendingPathComponent("photos.npy").path] : [])
    return Contender(label: architectureName, frozen: frozen, peer: peer, timingArguments: timingArguments)
}

/// Any network through its frozen form: FrozenExport writes it, onnx_frozen.py builds the
/// ONNX graph from the file, times it and saves its outputs for a seeded input.
func frozenPeer(_ architectureName: String, _ architecture: BackboneArchitecture) throws -> Contender {
    let network: any Backbone
    let source: String
    if architecture == .compact, let path = DefaultBackbone.path {
        network = try BackboneStore.load(from: path)
        source = "shipped weights \(path)"
    } else {
        network = architecture.make(seed: 0)
        source = "seeded random weights (seed 0; \(architecture == .compact ? "shipped weights not found" : "ours, not onnx_backbones.py's"))"
    }
    let frozen = network.frozen()
    let model = work.appendingPathComponent("\(architectureName)-frozen.safetensors").path
    let outputs = work.appendingPathComponent("\(architectureName)-frozen-outputs.safetensors").path
    try FrozenExport.write(frozen, height: 224, width: 224, to: model)
    let size = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? 0
    print("  \(source); frozen network exported to \(URL(fileURLWithPath: model).lastPathComponent) "
          + "(\(frozen.layers.count) layers, \(String(format: "%.1f", Double(size) / 1e6)) MB)")
    let script = scripts.appendingPathComponent("onnx_frozen.py").path
    let peer = try peerTimings([script, "--model", model] + timingOptions + ["--check-batch", "2", "--seed", "0",
                                                                            "--save-outputs", outputs])
    let saved = Dictionary(uniqueKeysWithValues: try WeightImporter.load(contentsOfFile: outputs).map {
        ($0.name, Tensor($0.scalars, shape: $0.shape))
    })
    let input = saved["input"]!
    let features = frozen.features(nchwToNHWC(input))
    var compared: [(String, Tensor, String)] = []
    if let logits = features.logits { compared.append(("logits", logits, "logits")) }
    compared.append(("embedding", features.embedding, "embedding"))
    for (i, map) in features.maps.enumerated() {
        compared.append(("feat_s\(input.shape[2] / max(map.shape[1], 1))", map, "map\(i)"))
    }
    print("  agreement with ONNX Runtime on the same input (seeded N(0, 1), batch \(input.shape[0])), max abs / relative to the largest value:")
    for (name, ours, key) in compared {
        guard let theirs = saved[key] else { fatalError("\(outputs): no \(key)") }
        let ort = agreement(ours, theirs.rank == 4 ? nchwToNHWC(theirs) : theirs)
        let shape = "[" + ours.shape.map(String.init).joined(separator: ", ") + "]"
        print("    \(name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(shape.padding(toLength: 20, withPad: " ", startingAt: 0))"
              + String(format: " %.2e / %.2e", ort.absolute, ort.relative))
    }
    return Contender(label: architecture == .compact ? architectureName : "\(architectureName) (frozen)", frozen: frozen,
                     peer: peer, timingArguments: [script, "--model", model] + timingOptions)
}

print("backbone-bench: \(ProcessInfo.processInfo.processorCount) cores, build features \(CPUFeatures.buildFeatures.joined(separator: " "))")
var rows: [(String, Int, Int, Double, Double, Double)] = []
/// The median of a non-empty list.
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted(), middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
for architectureName in options.architectures {
    guard let architecture = BackboneArchitecture(rawValue: architectureName) else { fatalError("unknown architecture \(architectureName)") }
    print("\n== \(architectureName)")
    var contender = architecture == .compact || options.frozenPeer
        ? try frozenPeer(architectureName, architecture) : try referencePeer(architectureName, architecture)
    var ours: [String: Double] = [:]
    // Each round's ours / ONNX Runtime per cell: the two ran within a minute of each other,
    // so the median of these is not moved by one side catching a fast minute.
    var roundRatios: [String: [Double]] = [:]
    let pools = Dictionary(uniqueKeysWithValues: options.threads.map { ($0, ThreadPool(threadCount: $0)) })
    for round in 1...options.rounds {
        var peerRound = contender.peer
        if round > 1 {
            peerRound = try peerTimings(contender.timingArguments)
            for (cell, value) in peerRound {
                contender.peer[cell] = max(contender.peer[cell] ?? 0, value)
            }
        }
        var line: [String] = []
        for threads in options.threads {
            for batch in options.batches {
                let value = throughput(contender.frozen, batch: batch, pool: pools[threads]!, minTime: options.minTime)
                ours["\(threads)x\(batch)", default: 0] = max(ours["\(threads)x\(batch)"] ?? 0, value)
                let peerValue = peerRound["\(threads)x\(batch)"] ?? .nan
                roundRatios["\(threads)x\(batch)", default: []].append(value / peerValue)
                line.append(String(format: "%dt b%d %.1f/%.1f", threads, batch, value, peerValue))
            }
        }
        print("  round \(round): images/s ours/ONNX Runtime " + line.joined(separator: ", "))
    }
    for threads in options.threads {
        for batch in options.batches {
            rows.append((contender.label, batch, threads, ours["\(threads)x\(batch)"] ?? .nan,
                         contender.peer["\(threads)x\(batch)"] ?? .nan, median(roundRatios["\(threads)x\(batch)"] ?? [.nan])))
        }
    }
}

print("\n== images/s at 224x224 (median batch time, best of \(options.rounds) interleaved rounds), ours vs ONNX Runtime on the same network and weights")
print("(ratio: best against best; per round: the median of the rounds' own ratios)")
print("arch                batch threads      ours       ORT   ratio  per round")
for (name, batch, threads, ours, ort, perRound) in rows {
    print("\(name.padding(toLength: 19, withPad: " ", startingAt: 0)) \(String(format: "%5d %7d %9.1f %9.1f %6.2fx %9.2fx", batch, threads, ours, ort, ours / ort, perRound))")
}
