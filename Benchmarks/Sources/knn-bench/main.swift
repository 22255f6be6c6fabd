// knn-bench: `MemoryBank.nearest` (k = 1) on a bank and queries written by
// Scripts/knn_bench.py, which runs this program interleaved with its peers (faiss-cpu's exact
// IndexFlatL2 and numpy) on the same data and prints the ratios. One process measures one
// thread count, so that every contender starts equally cold.
//
//   knn-bench --bank bank.npy --queries queries.npy [--threads T] [--repeats R]
//             [--save-indices ours_indices.npy] [--save-distances ours_distances.npy]
//
// Prints one JSON object: {"threads", "bank": [B, D], "queries": [Q, D], "ms": [every run],
// "ms_median", "ms_best", "cpu_ms_median" (process CPU time, all threads),
// "gflop_per_s" (2 Q B D / median)}. The first run is a warm-up and
// is not counted. Indices are written as int32 [Q], squared distances as float32 [Q].
//
// ## The .npy files read and written here (numpy's format, version 1.0 / 2.0)
// magic "\x93NUMPY", major and minor version bytes, header length (UInt16 little-endian
// for 1.x, UInt32 for 2.x), then an ASCII Python dict literal padded with spaces and a
// newline so that the data starts at a multiple of 64 bytes:
//   {'descr': '<f4', 'fortran_order': False, 'shape': (16384, 384), }
// then the raw little-endian array in C order. Only '<f4' (read and written) and '<i4'
// (written) C-order arrays are handled; anything else is refused with a message.
import Anomaly
import Foundation
import TensorCore

struct NpyError: Error, CustomStringConvertible {
    let description: String
}

/// Reads a float32, C-order .npy file into a tensor of its shape.
func readNpy(_ path: String) throws -> Tensor {
    guard let data = FileManager.default.contents(atPath: path) else { throw NpyError(description: "\(path): cannot read") }
    let bytes = [UInt8](data)
    guard bytes.count >= 10, bytes[0] == 0x93, String(decoding: bytes[1..<6], as: UTF8.self) == "NUMPY" else {
        throw NpyError(description: "\(path): not a .npy file (no \\x93NUMPY magic)")
    }
    let major = bytes[6]
    let headerLength: Int, headerStart: Int
    switch major {
    case 1:
        headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        headerStart = 10
    case 2, 3:
        guard bytes.count >= 12 else { throw NpyError(description: "\(path): truncated header") }
        headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        headerStart = 12
    default: throw NpyError(description: "\(path): .npy version \(major) is not supported")
    }
    guard bytes.count >= headerStart + headerLength else { throw NpyError(description: "\(path): truncated header") }
    let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
    guard header.contains("'descr': '<f4'") else { throw NpyError(description: "\(path): only float32 ('<f4') is read; header \(header)") }
    guard header.contains("'fortran_order': False") else { throw NpyError(description: "\(path): Fortran order is not read") }
    guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
        throw NpyError(description: "\(path): no shape in header \(header)")
    }
    let shape = header[open.upperBound..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    let count = shape.reduce(1, *)
    let dataStart = headerStart + headerLength
    guard bytes.count - dataStart == count * 4 else {
        throw NpyError(description: "\(path): \(bytes.count - dataStart) data bytes for shape \(shape) (expected \(count * 4))")
    }
    return Tensor(uninitializedShape: shape) { out in
        bytes.withUnsafeBytes { raw in
            for i in 0..<count { out[i] = Float(bitPattern: raw.loadUnaligned(fromByteOffset: dataStart + 4 * i, as: UInt32.self).littleEndian) }
        }
    }
}

/// Writes a 1-D array as a version 1.0 .npy file; `descr` is '<f4' or '<i4'.
func writeNpy(_ path: String, descr: String, count: Int, littleEndianWords: [UInt32]) throws {
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(count),), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
    bytes += Array(header.utf8)
    bytes.reserveCapacity(bytes.count + 4 * count)
    for word in littleEndianWords {
        let w = word.littleEndian
        bytes += [UInt8(w & 0xFF), UInt8(w >> 8 & 0xFF), UInt8(w >> 16 & 0xFF), UInt8(w >> 24)]
    }
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw NpyError(description: "\(path): cannot write") }
}

/// CPU time of the whole process (all threads), in milliseconds: on a shared machine the
/// wall clock also counts the time other processes held the cores.
func processCPUMilliseconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) * 1e3 + Double(t.tv_nsec) * 1e-6
}

var bankPath: String?, queriesPath: String?, threads = 1, repeats = 7
var indicesPath: String?, distancesPath: String?
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--bank": bankPath = arguments.next()
    case "--queries": queriesPath = arguments.next()
    case "--threads": threads = arguments.next().flatMap { Int($0) } ?? threads
    case "--repeats": repeats = arguments.next().flatMap { Int($0) } ?? repeats
    case "--save-indices": indicesPath = arguments.next()
    case "--save-distances": distancesPath = arguments.next()
    default:
        print("usage: knn-bench --bank B.npy --queries Q.npy [--threads T] [--repeats R] [--save-indices F.npy] [--save-distances F.npy]")
        exit(2)
    }
}
guard let bankPath, let queriesPath, threads >= 1, repeats >= 1 else {
    print("knn-bench: --bank and --queries are required; --threads and --repeats must be positive")
    exit(2)
}

do {
    try CPUFeatures.check()
    let bankFeatures = try readNpy(bankPath)      // [B, D]
    let queries = try readNpy(queriesPath)        // [Q, D]
    guard bankFeatures.rank == 2, queries.rank == 2, bankFeatures.shape[1] == queries.shape[1] else {
        throw NpyError(description: "bank \(bankFeatures.shape) and queries \(queries.shape) must be [B, D] and [Q, D]")
    }
    let bank = MemoryBank(bankFeatures)
    let pool: ThreadPool? = threads > 1 ? ThreadPool(threadCount: threads) : nil
    var result = bank.nearest(queries, k: 1, pool: pool)  // warm-up, also the result kept
    var times: [Double] = [], cpuTimes: [Double] = []
    let clock = ContinuousClock()
    for _ in 0..<repeats {
        let cpuStart = processCPUMilliseconds()
        let elapsed = clock.measure { result = bank.nearest(queries, k: 1, pool: pool) }
        cpuTimes.append(processCPUMilliseconds() - cpuStart)
        times.append(Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) * 1e-15)
    }
    let sorted = times.sorted()
    let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    let (q, b, d) = (queries.shape[0], bankFeatures.shape[0], bankFeatures.shape[1])
    let flops = 2.0 * Double(q) * Double(b) * Double(d)
    if let indicesPath {
        try writeNpy(indicesPath, descr: "<i4", count: q, littleEndianWords: result.indices.map { UInt32(bitPattern: $0) })
    }
    if let distancesPath {
        try writeNpy(distancesPath, descr: "<f4", count: q, littleEndianWords: result.distances.scalars.map(\.bitPattern))
    }
    let msList = times.map { String(format: "%.3f", $0) }.joined(separator: ", ")
    print("{\"threads\": \(threads), \"bank\": [\(b), \(d)], \"queries\": [\(q), \(d)], \"ms\": [\(msList)], "
          + "\"ms_median\": \(String(format: "%.3f", median)), \"ms_best\": \(String(format: "%.3f", sorted[0])), "
          + "\"cpu_ms_median\": \(String(format: "%.3f", cpuTimes.sorted()[cpuTimes.count / 2])), "
          + "\"gflop_per_s\": \(String(format: "%.2f", flops / (median * 1e-3) / 1e9))}")
} catch {
    print("knn-bench: \(error)")
    exit(1)
}
