// Trains on the demo's good washers with the shipped backbone and inspects one part: what
// an integrator's first program does, built against VisualInspection as a versioned
// dependency. Exits non-zero if anything fails or if an image takes longer than a second
// (a build without the CPU flags is about 80x slower).
import Foundation
import VisualInspection

let fixtures = URL(fileURLWithPath: CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Fixtures/demo")
let goodFolder = fixtures.appendingPathComponent("train/good"), line = fixtures.appendingPathComponent("line")
let goodFiles = try FileManager.default.contentsOfDirectory(at: goodFolder, includingPropertiesForKeys: nil)
    .filter { $0.pathExtension == "png" }.sorted { $0.path < $1.path }
let good = try goodFiles.map { try Image(contentsOf: $0) }
let model = try InspectorTrainer.train(good: good)  // the shipped backbone
let modelURL = FileManager.default.temporaryDirectory.appendingPathComponent("line-app-\(getpid()).vimodel")
try model.write(to: modelURL)
let inspector = try Inspector(contentsOf: modelURL)
try? FileManager.default.removeItem(at: modelURL)
let part = try FileManager.default.contentsOfDirectory(at: line, includingPropertiesForKeys: nil)
    .filter { $0.pathExtension == "png" }.sorted { $0.path < $1.path }[0]
let result = try inspector.inspect(contentsOf: part)
print("consumer: \(part.lastPathComponent): \(result.verdict.rawValue), score \(result.score), \(result.milliseconds) ms")
if result.milliseconds > 1000 { print("consumer: too slow, the CPU flags did not reach the dependency"); exit(1) }
