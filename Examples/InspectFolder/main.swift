// An integrator's program: learn good parts from a folder, inspect another folder, print
// what was found. The whole use of the library is the ten lines marked below.
//
//   swift run -c release inspect-folder-example GOOD_DIR LINE_DIR [BACKBONE_FILE]
import Foundation
import VisualInspection

let arguments = CommandLine.arguments
guard arguments.count == 3 || arguments.count == 4 else {
    print("usage: inspect-folder-example GOOD_DIR LINE_DIR [BACKBONE_FILE | compact]")
    exit(2)
}
do {
    // 1. A backbone: the shipped default, a file from `vinspect backbone import`, or
    //    (for tests) the untrained compact network.
    let backbone: TrainingBackbone =
        arguments.count == 3 ? .shipped
        : arguments[3] == "compact" ? .untrainedCompact
        : .file(URL(fileURLWithPath: arguments[3]))

    // 2. Train from good images, keep the model, inspect a folder in input order.  -- the ten lines
    let goodFiles = InputFiles([arguments[1]]).filter { $0.hasSuffix(".png") || $0.hasSuffix(".jpg") }
    let good = try goodFiles.map { try Image(contentsOfFile: $0) }
    let model = try InspectorTrainer.train(good: good, backbone: backbone)
    try model.write(to: URL(fileURLWithPath: "example.vimodel"))
    let inspector = try Inspector(contentsOf: URL(fileURLWithPath: "example.vimodel"))
    for record in inspector.batch([arguments[2]], jobs: 2) {
        switch record.outcome {
        case .success(let result): print(record.path, result.verdict.rawValue, result.score, "boxes:", result.boxes.count)
        case .failure(let error): print(record.path, "error:", error)
        }
    }
} catch {
    print("error: \(error)")
    exit(3)
}
