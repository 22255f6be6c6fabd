#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The files named by a list of paths, with folders walked recursively, produced lazily
/// so that a folder of any size costs only one directory listing at a time.
///
/// Order is deterministic: the paths in the order given; inside a folder, entries sorted
/// by name (byte order), each sub-folder walked where it sorts. A path given explicitly is
/// always produced, even when it does not exist or is not an image, so that the caller
/// reports it. A folder walk takes image files only: regular files named `.png`, `.jpg` or
/// `.jpeg` (any case); it skips hidden entries (names starting with "."), other files
/// (counted, see ``census()``), FIFOs, sockets and devices, the `excluding` paths (a run's
/// own report and heat-map folder), and any folder it has already walked (so a symbolic
/// link loop ends). A folder given explicitly in which the walk finds no image is produced
/// itself, after its (non-existent) files, so that the caller can report it as empty.
///
/// Each produced path is the given path, joined with the entry names below it when a
/// folder was walked (`dir` + `/` + `name`), exactly as the report contract asks.
public struct InputFiles: Sequence, Sendable {
    /// The paths as given (files or folders).
    public let paths: [String]
    /// Files and folders a walk never takes (compared by identity, so any spelling of the
    /// same file matches; paths that do not exist when the walk starts are ignored).
    public let excluding: [String]

    /// Creates the walk over `paths`, leaving out `excluding`.
    public init(_ paths: [String], excluding: [String] = []) {
        self.paths = paths
        self.excluding = excluding
    }

    public func makeIterator() -> Iterator { Iterator(paths: paths, excluding: excluding) }

    /// Walks the whole input once: how many paths it produces and how many other files
    /// the folder walks skipped (not images by name, or not regular files).
    public func census() -> (inputs: Int, skipped: Int) {
        var iterator = makeIterator()
        var inputs = 0
        while iterator.next() != nil { inputs += 1 }
        return (inputs, iterator.skipped)
    }

    /// Whether a file name is one a folder walk takes: `.png`, `.jpg` or `.jpeg`, any case.
    public static func isImageName(_ path: String) -> Bool {
        let lower = path.lowercased()
        return lower.hasSuffix(".png") || lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg")
    }

    /// Walks one top-level path at a time; inside a folder, depth-first, one sorted listing
    /// per folder on a stack.
    public struct Iterator: IteratorProtocol {
        private var topLevel: [String]
        private var stack: [[String]] = []
        private var folder: String?
        private var produced = 0
        private var walked: Set<FileIdentity> = []
        private let excluded: Set<FileIdentity>
        /// Files the walks have skipped so far (not images by name, or not regular files).
        public private(set) var skipped = 0

        init(paths: [String], excluding: [String]) {
            topLevel = Array(paths.reversed())
            excluded = Set(excluding.compactMap(FileIdentity.init(path:)))
        }

        public mutating func next() -> String? {
            while true {
                if let current = folder {
                    if let path = nextInFolder() {
                        produced += 1
                        return path
                    }
                    folder = nil
                    if produced == 0 { return current }
                    continue
                }
                guard let path = topLevel.popLast() else { return nil }
                if isDirectory(path) {
                    folder = path
                    produced = 0
                    walked = []
                    if let identity = FileIdentity(path: path) { walked.insert(identity) }
                    stack = [Array(listDirectory(path).reversed())]
                    continue
                }
                return path
            }
        }

        private mutating func nextInFolder() -> String? {
            while var frame = stack.popLast() {
                guard let path = frame.popLast() else { continue }
                stack.append(frame)
                let identity = FileIdentity(path: path)
                if let identity, excluded.contains(identity) { continue }
                if isDirectory(path) {
                    guard let identity, walked.insert(identity).inserted else { continue }
                    stack.append(Array(listDirectory(path).reversed()))
                    continue
                }
                guard InputFiles.isImageName(path), isRegularFile(path) else {
                    skipped += 1
                    continue
                }
                return path
            }
            return nil
        }
    }
}

/// A file's device and inode: the same file however its path is spelled.
struct FileIdentity: Hashable, Sendable {
    let device: UInt64, inode: UInt64

    init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }
}

/// Whether two paths name the same existing file or folder.
package func sameFile(_ a: String, _ b: String) -> Bool {
    guard let x = FileIdentity(path: a), let y = FileIdentity(path: b) else { return false }
    return x == y
}

/// Whether the path names a folder (following symbolic links).
package func isDirectory(_ path: String) -> Bool {
    var status = stat()
    return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
}

package func isRegularFile(_ path: String) -> Bool {
    var status = stat()
    return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG
}

/// The visible entries of a folder, sorted by name and joined with the folder's path.
/// An unreadable folder lists as empty (its files cannot be reported individually).
package func listDirectory(_ path: String) -> [String] {
    guard let directory = opendir(path) else { return [] }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name.hasPrefix(".") { continue }
        names.append(name)
    }
    names.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    let prefix = path.hasSuffix("/") ? path : path + "/"
    return names.map { prefix + $0 }
}
