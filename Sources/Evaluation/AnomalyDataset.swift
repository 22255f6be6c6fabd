// Anomaly-detection data sets on disk: the MVTec AD layout, and the magnetic-tile layout.
@_spi(Engine) import VisualInspection
import TensorCore

/// One test image with its ground truth.
public struct LabelledImage: Sendable {
    /// The image file.
    public var path: String
    /// The defect type (`good` for defect-free images).
    public var type: String
    /// The ground-truth mask file, when the image has one.
    public var maskPath: String?
    /// Whether the image shows a defect.
    public var isDefect: Bool { type != "good" }
}

/// A data set for anomaly detection: good training images and labelled test images.
public struct AnomalyDataset: Sendable {
    /// The folder it was read from.
    public var root: String
    /// Which layout it has.
    public var layout: String
    /// Defect-free images to draw training shots from.
    public var trainGood: [String]
    /// Test images, good and defective.
    public var test: [LabelledImage]

    /// Reads the folder: the MVTec AD layout (`train/good`, `test/<type>`,
    /// `ground_truth/<type>/<name>_mask.png`), or the magnetic-tile layout
    /// (`MT_<type>/Imgs/<name>.jpg` with `<name>.png` masks, `MT_Free` defect-free), whose
    /// defect-free images are split in half by a fixed shuffle (seed 0): the first half is
    /// the training pool, the second half the good test images.
    public static func load(_ root: String) throws(DatasetError) -> AnomalyDataset {
        let base = root.hasSuffix("/") ? String(root.dropLast()) : root
        if isDirectory(base + "/train/good") && isDirectory(base + "/test") {
            let train = imageFiles(base + "/train/good")
            var test: [LabelledImage] = []
            for type in listDirectory(base + "/test").filter(isDirectory) {
                let name = type.split(separator: "/").last.map(String.init) ?? type
                for file in imageFiles(type) {
                    let stem = stemOf(file)
                    let mask = base + "/ground_truth/\(name)/\(stem)_mask.png"
                    test.append(LabelledImage(path: file, type: name, maskPath: name != "good" && isRegularFile(mask) ? mask : nil))
                }
            }
            guard !train.isEmpty else { throw .empty(path: base + "/train/good") }
            guard test.contains(where: \.isDefect), test.contains(where: { !$0.isDefect }) else {
                throw .layout(path: base, detail: "the test folder needs both good and defect images")
            }
            return AnomalyDataset(root: base, layout: "mvtec", trainGood: train, test: test)
        }
        if isDirectory(base + "/MT_Free/Imgs") {
            var free = imageFiles(base + "/MT_Free/Imgs").filter { $0.hasSuffix(".jpg") }
            var generator = Xoshiro256(seed: 0)
            free.shuffle(using: &generator)
            let half = free.count / 2
            var test = free[half...].sorted().map { LabelledImage(path: $0, type: "good", maskPath: nil) }
            for folder in listDirectory(base).filter({ isDirectory($0) && !$0.hasSuffix("MT_Free") }) {
                let name = String((folder.split(separator: "/").last ?? "").dropFirst(3)).lowercased()
                for file in imageFiles(folder + "/Imgs").filter({ $0.hasSuffix(".jpg") }) {
                    let mask = String(file.dropLast(4)) + ".png"
                    test.append(LabelledImage(path: file, type: name, maskPath: isRegularFile(mask) ? mask : nil))
                }
            }
            return AnomalyDataset(root: base, layout: "magnetic-tile", trainGood: Array(free[..<half]).sorted(), test: test)
        }
        throw .layout(path: base, detail: "expected train/good and test/<type> (MVTec AD) or MT_Free/Imgs (magnetic tile)")
    }

    /// `k` training images drawn with `seed` (all of them when `k` is nil or too large),
    /// in a stable order.
    public func shots(_ k: Int?, seed: UInt64) -> [String] {
        guard let k, k < trainGood.count else { return trainGood }
        var generator = Xoshiro256(seed: seed)
        return Array(trainGood.shuffled(using: &generator).prefix(k))
    }
}

func imageFiles(_ folder: String) -> [String] {
    listDirectory(folder).filter { path in
        let lower = path.lowercased()
        return isRegularFile(path) && (lower.hasSuffix(".png") || lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg"))
    }
}

func stemOf(_ path: String) -> String {
    let name = path.split(separator: "/").last.map(String.init) ?? path
    guard let dot = name.lastIndex(of: ".") else { return name }
    return String(name[..<dot])
}
