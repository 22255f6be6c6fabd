// Patch features for the memory bank: feature maps from two depths of a frozen backbone,
// each averaged over a local neighbourhood, brought to one grid and concatenated.
import NeuralNet
import TensorCore

/// How patch features are formed from a backbone's feature maps.
public struct PatchFeatureOptions: Sendable, Equatable, Codable {
    /// Which feature maps to use, by index into the backbone's taps (0: stride 4, 1: stride 8,
    /// 2: stride 16). The first one sets the grid the others are resized to.
    public var layers: [Int] = [1, 2]
    /// Side of the square neighbourhood each feature is averaged over (1 = none). PatchCore
    /// uses 3: each patch then describes its surroundings, not only itself.
    public var aggregation: Int = 3

    public init(layers: [Int] = [1, 2], aggregation: Int = 3) {
        self.layers = layers
        self.aggregation = aggregation
    }
}

/// Patch features of a batch of images.
public struct PatchGrid: Sendable {
    /// `[N, H, W, D]`: one D-dimensional feature per grid cell of each image.
    public var features: Tensor
    public var height: Int { features.shape[1] }
    public var width: Int { features.shape[2] }
    public var dimension: Int { features.shape[3] }

    /// The features of image `index` as `[H*W, D]` rows.
    public func rows(of index: Int) -> Tensor {
        let cells = height * width * dimension
        let all = features
        return Tensor(uninitializedShape: [height * width, dimension]) { out in
            all.withUnsafeBufferPointer { src in
                out.baseAddress!.update(from: src.baseAddress! + index * cells, count: cells)
            }
        }
    }
}

/// Extracts patch features: runs the frozen backbone up to its deepest needed tap,
/// aggregates each map, resizes to the first map's grid, concatenates channels.
///
/// - Parameters:
///   - images: `[N, H, W, 3]` normalised input.
///   - backbone: the frozen network.
///   - options: layers and aggregation.
/// - Returns: the patch grid, `[N, h, w, D]` with `D` the sum of the layers' channels.
public func extractPatchFeatures(_ images: Tensor, backbone: FrozenBackbone, options: PatchFeatureOptions,
                                 pool: ThreadPool? = .shared) -> PatchGrid {
    patchFeatures(fromMaps: backbone.features(images, stoppingAfterLastTap: true, pool: pool).maps, options: options, pool: pool)
}

/// Patch features from feature maps that were already computed (e.g. by a forward pass
/// that also gives the classifier its embedding).
///
/// - Parameters:
///   - maps: the backbone's feature maps at strides 4, 8, 16, each `[N, H/s, W/s, C]`.
///   - options: layers and aggregation.
/// - Returns: the patch grid, `[N, h, w, D]`.
public func patchFeatures(fromMaps maps: [Tensor], options: PatchFeatureOptions, pool: ThreadPool? = .shared) -> PatchGrid {
    let chosen = options.layers.map { maps[$0] }
    let (h, w) = (chosen[0].shape[1], chosen[0].shape[2])
    let parts = chosen.map { map -> Tensor in
        var m = map
        if options.aggregation > 1 { m = localAverage(m, size: options.aggregation, pool: pool) }
        if m.shape[1] != h || m.shape[2] != w { m = bilinearResize(m, height: h, width: w) }
        return m
    }
    return PatchGrid(features: parts.count == 1 ? parts[0] : concatenateChannels(parts))
}

/// Average over a `size x size` neighbourhood, stride 1, zero padding not counted (so
/// border cells average what exists), on `[N, H, W, C]`.
func localAverage(_ x: Tensor, size: Int, pool: ThreadPool?) -> Tensor {
    avgPool2d(x, kernel: (size, size), stride: (1, 1), padding: .symmetric(size / 2), countPadding: false)
}

/// Bilinear resize of `[N, H, W, C]` (align_corners = false).
func bilinearResize(_ x: Tensor, height: Int, width: Int) -> Tensor {
    NeuralNet.bilinearResize(x, height: height, width: width)
}

/// Concatenation of `[N, H, W, C_i]` tensors along channels.
func concatenateChannels(_ parts: [Tensor]) -> Tensor {
    concatChannels(parts)
}
