import Anomaly
import FewShot
@_spi(Engine) import ImageIO
import NeuralNet
import TensorCore

/// Labelled images in one sub-folder per class.
public struct ClassFolders: Sendable {
    /// Class names (the sub-folder names) and their image files.
    public var classes: [(name: String, files: [String])]

    /// Reads `root/<class>/...` (recursively). A PNG beside a JPEG of the same name is taken
    /// for its mask and skipped (the magnetic-tile layout), as are hidden files.
    ///
    /// - Parameters:
    ///   - root: the folder.
    ///   - excluding: class folder names to leave out (e.g. `MT_Free`, `good`).
    ///   - minimumClasses: how many classes with images there must be.
    public static func load(_ root: String, excluding: Set<String> = [],
                            minimumClasses: Int = 2) throws(DatasetError) -> ClassFolders {
        var classes: [(name: String, files: [String])] = []
        for folder in listDirectory(root).filter(isDirectory) {
            let name = folder.split(separator: "/").last.map(String.init) ?? folder
            if excluding.contains(name) { continue }
            let files = imageFiles(below: folder)
            if !files.isEmpty { classes.append((name, files)) }
        }
        if classes.count < minimumClasses {
            throw .layout(path: root, detail: "needs at least \(minimumClasses == 1 ? "one class sub-folder" : "\(minimumClasses) class sub-folders") with images")
        }
        return ClassFolders(classes: classes)
    }

    /// The images below a folder (walked recursively, in name order), leaving out a PNG
    /// beside a JPEG of the same name: the magnetic-tile layout's mask.
    public static func imageFiles(below folder: String) -> [String] {
        let all = InputFiles([folder]).filter(InputFiles.isImageName)
        let jpegStems = Set(all.filter { $0.lowercased().hasSuffix(".jpg") }.map { String($0.dropLast(4)) })
        return all.filter { !($0.lowercased().hasSuffix(".png") && jpegStems.contains(String($0.dropLast(4)))) }
    }
}

/// How embeddings are taken from the backbone.
public enum EmbeddingSource: String, Sendable, Codable, CaseIterable {
    /// The pooled last feature map (the backbone's own embedding).
    case last
    /// The pooled stride-8 and stride-16 maps and the embedding, concatenated (texture-
    /// and part-level cues together).
    case multi
    /// `multi`, then the stride-8 and stride-16 maps pooled again over the anomalous region
    /// only (weighted by the anomaly map, weights max(0, z - 1)^2 of the map's cells):
    /// a small defect on a large part is described by itself, not drowned by the part.
    /// Without an anomaly map the region is the whole image.
    case region
}

/// Raw embeddings of images (before the classifier's transform); for ``EmbeddingSource/region``
/// the anomaly ensemble gives each image's region (nil: the whole image).
package func embeddings(of images: [Tensor], backbone: FrozenBackbone, source: EmbeddingSource,
                      anomaly: AnomalyEnsemble? = nil, pool: ThreadPool = .shared) -> [[Float]] {
    var out: [[Float]] = []
    var start = 0
    while start < images.count {
        let end = min(start + 8, images.count)
        let features = backbone.features(Tensor.stacked(Array(images[start..<end])), pool: pool)
        let regions = source == .region ? anomaly.map { $0.combine(featureMaps: features.maps, pool: pool).map(\.map) } : nil
        out += embeddings(from: features, source: source, regions: regions)
        start = end
    }
    return out
}

/// Raw embeddings of a batch from its backbone features (one vector per image); `regions`
/// are the images' anomaly maps, used by ``EmbeddingSource/region`` (nil: whole images).
package func embeddings(from features: BackboneFeatures, source: EmbeddingSource, regions: [AnomalyMap]? = nil) -> [[Float]] {
    let n = features.embedding.shape[0], d = features.embedding.shape[1]
    let last = features.embedding.scalars
    var pooled: [[Float]] = []
    if source != .last {
        pooled = features.maps[1...2].map { map in adaptiveAvgPoolForFeatures(map).scalars }
    }
    return (0..<n).map { i in
        var v = Array(last[(i * d)..<((i + 1) * d)])
        if source != .last {
            // Each part normalised on its own so that the wide embedding does not drown
            // the narrower map descriptors.
            v = normalizedVector(v)
            for (index, map) in features.maps[1...2].enumerated() {
                let c = map.shape[3]
                v += normalizedVector(Array(pooled[index][(i * c)..<((i + 1) * c)]))
            }
        }
        if source == .region {
            for (index, map) in features.maps[1...2].enumerated() {
                let (h, w, c) = (map.shape[1], map.shape[2], map.shape[3])
                guard let region = regions?[i], let weights = regionWeights(region, gridWidth: w, gridHeight: h) else {
                    v += normalizedVector(Array(pooled[index][(i * c)..<((i + 1) * c)]))
                    continue
                }
                var sum = [Float](repeating: 0, count: c)
                map.scalars.withUnsafeBufferPointer { x in
                    let base = i * h * w * c
                    for p in 0..<(h * w) where weights[p] > 0 {
                        let wp = weights[p], row = base + p * c
                        for k in 0..<c { sum[k] += wp * x[row + k] }
                    }
                }
                v += normalizedVector(sum)
            }
        }
        return v
    }
}

/// The weights of a feature grid's cells in an image's anomalous region: each cell's mean
/// anomaly value `a`, standardised over the image (`z`), weighted `max(0, z - 1)^2`, so that
/// only cells well above the image's own level count and the strongest most. Nil when no
/// cell stands out (a flat map): the region is then the whole image.
package func regionWeights(_ map: AnomalyMap, gridWidth w: Int, gridHeight h: Int) -> [Float]? {
    var cells = [Double](repeating: 0, count: w * h), counts = [Double](repeating: 0, count: w * h)
    for y in 0..<map.height {
        let gy = min(h - 1, y * h / map.height)
        for x in 0..<map.width {
            let gx = min(w - 1, x * w / map.width)
            cells[gy * w + gx] += Double(map.values[y * map.width + x])
            counts[gy * w + gx] += 1
        }
    }
    for p in cells.indices { cells[p] /= max(counts[p], 1) }
    let mean = cells.reduce(0, +) / Double(cells.count)
    let sd = (cells.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(cells.count)).squareRoot()
    guard sd > 0, sd.isFinite else { return nil }
    let weights = cells.map { cell -> Float in
        let above = Swift.max(0, (cell - mean) / sd - 1)
        return Float(above * above)
    }
    let total = weights.reduce(0, +)
    guard total > 0 else { return nil }
    return weights.map { $0 / total }
}

/// Global average pooling of `[N, H, W, C]` to `[N, C]`.
func adaptiveAvgPoolForFeatures(_ x: Tensor) -> Tensor {
    globalAvgPool(x)
}

/// The image seen through the `view`-th symmetry of the square, `[H, W, C]`: 0 itself,
/// 1 mirrored left-right, 2 top-bottom, 3 and 4 a quarter turn either way, 5 a half turn,
/// 6 and 7 the two diagonal mirrors. Surface defects have no preferred orientation, so
/// these are the same defect seen again (used to multiply base-class examples when a head
/// is trained).
package func symmetryView(_ image: Tensor, _ view: Int) -> Tensor {
    switch view % 8 {
    case 0: return image
    case 1: return flipped(image, horizontal: true)
    case 2: return flipped(image, horizontal: false)
    case 3: return rotated90(image, times: 1)
    case 4: return rotated90(image, times: 3)
    case 5: return rotated90(image, times: 2)
    case 6: return flipped(rotated90(image, times: 1), horizontal: true)
    default: return flipped(rotated90(image, times: 1), horizontal: false)
    }
}

/// Raw embeddings of `views` symmetry views of each image (see ``symmetryView(_:_:)``),
/// `[images][views][D]`; view 0 is the image itself.
package func viewEmbeddings(of images: [Tensor], views: Int, backbone: FrozenBackbone, source: EmbeddingSource,
                           pool: ThreadPool = .shared) -> [[[Float]]] {
    let count = Swift.max(1, Swift.min(views, 8))
    let all = embeddings(of: images.flatMap { image in (0..<count).map { symmetryView(image, $0) } }, backbone: backbone,
                         source: source, pool: pool)
    return images.indices.map { i in Array(all[(i * count)..<((i + 1) * count)]) }
}

/// A data-set folder that cannot be used.
public enum DatasetError: Error, CustomStringConvertible, Sendable {
    /// The folder is not laid out as expected (`detail` says how).
    case layout(path: String, detail: String)
    /// A folder that should hold images holds none.
    case empty(path: String)

    public var description: String {
        switch self {
        case .layout(let path, let detail): return "\(path): unexpected folder layout (\(detail))"
        case .empty(let path): return "\(path): no images; put the defect-free training images there"
        }
    }
}
