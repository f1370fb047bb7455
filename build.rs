//! Builds the CUDA face of the engine from each op family's `src/engine/ops/<family>/*.cu` (after
//! the shared headers `kernels/*.cuh`), three ways:
//!
//! 1. Embeds the sources (a GPU device compiles them at run time where no cubin fits).
//! 2. Compiles them through NVRTC, when it can be loaded, to cubins for sm_70, sm_80 and sm_90
//!    plus PTX for newer GPUs, keeping ptxas's register/spill report (also written to
//!    `OUT_DIR/ptxas_smXY.txt` for reading). A compile error fails the build; with
//!    `FEAR_REQUIRE_NVRTC=1` (CI) a missing NVRTC, a register spill or a local-memory stack frame
//!    fails it too; `FEAR_NVRTC=off` skips it on purpose (a build that never launches a kernel,
//!    such as the fuzz targets'). The targets compile in parallel, `NUM_JOBS` at a time.
//! 3. Compiles them as C++ for the host with `kernels/emulate/` (an emulation of the CUDA
//!    built-ins), so tests and `fear doctor` run every kernel through the same launch code on a
//!    machine with no GPU.
//!
//! Everything lands in `OUT_DIR/kernels.rs`, included by `src/engine/cuda/artifacts.rs`; the block
//! sizes of `kernels/launch_bounds.cuh` land in `OUT_DIR/kernel_threads.rs`, included by
//! `src/engine/cuda/launch.rs` (`launch::threads`).

use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// (sm number, whether a cubin (else PTX)) for every target compiled. sm_100 and sm_120
/// (Blackwell) are compiled only where the NVRTC in use lists them (NVRTC 12.8 and later).
const TARGETS: &[(u32, bool)] = &[(70, true), (80, true), (90, true), (100, true), (120, true), (90, false)];
/// Targets compiled only when NVRTC supports them (older ones are required).
const OPTIONAL_TARGETS: &[u32] = &[100, 120];

/// Put before the kernel sources on the GPU (the emulation defines the same in cuda_host.hpp):
/// dynamic shared memory, sized per launch.
const PRELUDE: &str = "#ifndef FEAR_DYNAMIC_SHARED\n#define FEAR_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) T name[]\n#endif\n";

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    // The op families: a new family is a new `pub mod` in ops/mod.rs.
    println!("cargo:rerun-if-changed=src/engine/ops/mod.rs");
    println!("cargo:rerun-if-env-changed=FEAR_NVRTC");
    println!("cargo:rerun-if-env-changed=FEAR_REQUIRE_NVRTC");
    println!("cargo:rerun-if-env-changed=LD_LIBRARY_PATH");
    // Read at run time, not baked in with env!: a build script compiled in one checkout and
    // reused from a copied target/ must still read the kernels of the checkout being built.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let sources = kernel_sources(&root.join("kernels"), &root.join("src/engine/ops"));
    for (path, _) in &sources {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let names: Vec<String> = sources.iter().flat_map(|(_, text)| kernel_names(text)).collect();
    std::fs::write(out_dir.join("kernel_threads.rs"), thread_constants(&sources, &names)).unwrap();

    let mut out = String::new();
    out.push_str("/// (file name, CUDA source) of every kernel file.\npub const KERNEL_SOURCES: &[(&str, &str)] = &[\n");
    for (path, _) in &sources {
        let name = path.file_name().unwrap().to_string_lossy();
        writeln!(out, "    ({name:?}, include_str!({:?})),", path.display().to_string()).unwrap();
    }
    out.push_str("];\n/// Every `extern \"C\" __global__` kernel, in source order.\npub const KERNEL_NAMES: &[&str] = &[\n");
    for n in &names {
        writeln!(out, "    {n:?},").unwrap();
    }
    out.push_str("];\n");
    writeln!(out, "/// Definitions put before the kernel sources when compiled for a GPU.\npub const KERNEL_PRELUDE: &str = {PRELUDE:?};").unwrap();
    // The host emulation's C++ compile runs beside NVRTC's: the two are the build's long poles.
    std::thread::scope(|s| {
        let emulation = s.spawn(|| build_emulation(&root, &sources, &names, &out_dir));
        out.push_str(&nvrtc_artifacts(&sources, &out_dir));
        if let Err(panic) = emulation.join() {
            std::panic::resume_unwind(panic);
        }
    });
    std::fs::write(out_dir.join("kernels.rs"), out).unwrap();
}

/// The headers every kernel source and every other header relies on, in the order they go first
/// wherever the sources go: the block sizes, then the storage types (`fear_load` / `fear_store`,
/// which the shared device helpers are written with).
const FIRST_HEADERS: &[&str] = &["launch_bounds.cuh", "storage.cuh"];

/// The kernel sources in the order they are joined into one translation unit: the
/// [`FIRST_HEADERS`], then the other `.cuh` headers of `headers` (device helpers several sources share),
/// then the `.cu` file of each op family folder of `ops` (`ops/<family>/*.cu`), each group sorted
/// by path.
fn kernel_sources(headers: &Path, ops: &Path) -> Vec<(PathBuf, String)> {
    let with_extension = |dir: &Path, ext: &str| -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == ext)).collect())
            .unwrap_or_default();
        paths.sort();
        paths
    };
    let mut families: Vec<PathBuf> = std::fs::read_dir(ops).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    families.sort();
    let first: Vec<PathBuf> = FIRST_HEADERS.iter().map(|h| headers.join(h)).collect();
    let shared = with_extension(headers, "cuh").into_iter().filter(|p| !first.contains(p));
    let sources = families.iter().flat_map(|f| with_extension(f, "cu"));
    first.clone().into_iter().chain(shared).chain(sources).map(|p| (p.clone(), std::fs::read_to_string(&p).unwrap())).collect()
}

const KERNEL_MARK: &str = "extern \"C\" __global__ void ";

/// (name, launch-bound macro) of the `extern "C" __global__ void __launch_bounds__(FEAR_X_THREADS)
/// NAME(` kernels of a source (or `__launch_bounds__(FEAR_X_THREADS, FEAR_X_MIN_BLOCKS)`). A kernel
/// without a bound fails the build: the bound is what keeps ptxas from choosing more registers
/// than the block size Rust launches with allows.
fn kernel_signatures(text: &str) -> Vec<(String, String)> {
    text.match_indices(KERNEL_MARK)
        .map(|(at, _)| {
            let rest = &text[at + KERNEL_MARK.len()..];
            let head = &rest[..rest.find('\n').unwrap_or(rest.len())];
            let Some(bounded) = head.strip_prefix("__launch_bounds__(") else {
                panic!("kernel without __launch_bounds__(FEAR_*_THREADS): {head}");
            };
            let close = bounded.find(')').expect("unclosed __launch_bounds__");
            let bound = bounded[..close].split(',').next().unwrap_or("").trim().to_string();
            let after = bounded[close + 1..].trim_start();
            (after[..after.find('(').expect("kernel without a parameter list")].trim().to_string(), bound)
        })
        .collect()
}

/// Names of the kernels of a source.
fn kernel_names(text: &str) -> Vec<String> {
    kernel_signatures(text).into_iter().map(|(name, _)| name).collect()
}

/// `pub const FEAR_X_THREADS: u32 = N;` for every `#define FEAR_X_THREADS N` of the sources, and
/// `KERNEL_THREADS`, each kernel's bound, so the launch code can check a block against it.
fn thread_constants(sources: &[(PathBuf, String)], names: &[String]) -> String {
    let mut out = String::from("// Generated by build.rs from kernels/launch_bounds.cuh.\n");
    let mut defined = Vec::new();
    for line in sources.iter().flat_map(|(_, t)| t.lines()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["#define", name, value] = words[..] {
            if name.starts_with("FEAR_") && name.ends_with("_THREADS") {
                let n: u32 = value.parse().unwrap_or_else(|_| panic!("{name} must be a plain number, not {value}"));
                assert!((1..=1024).contains(&n), "{name} = {n} threads (1..=1024)");
                writeln!(out, "pub const {name}: u32 = {n};").unwrap();
                defined.push(name.to_string());
            }
        }
    }
    out.push_str("/// (kernel, threads per block it is bounded to), in source order.\npub const KERNEL_THREADS: &[(&str, u32)] = &[\n");
    let signatures: Vec<(String, String)> = sources.iter().flat_map(|(_, t)| kernel_signatures(t)).collect();
    assert_eq!(signatures.len(), names.len());
    for (name, bound) in signatures {
        assert!(defined.contains(&bound), "{name}: __launch_bounds__({bound}) names no #define FEAR_*_THREADS");
        writeln!(out, "    ({name:?}, {bound}),").unwrap();
    }
    out.push_str("];\n");
    out
}

/// The body (from the first `{` to its matching `}`) of the function whose name is followed by
/// `(` at `at` in `text`.
fn body_after(text: &str, at: usize) -> &str {
    let open = at + text[at..].find('{').expect("function without a body");
    let mut depth = 0;
    for (i, ch) in text[open..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open..open + i + 1];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces in a kernel source");
}

/// Whether each kernel synchronises its block (`__syncthreads`, `__syncwarp`, a warp shuffle, a
/// warp collective of kernels/mma.cuh (`mma.sync`, `ldmatrix.sync` in its PTX), or a call to a
/// `__device__` function that does, however deep): only those need the emulator's fibers; the
/// others run their threads as plain calls, which is far faster.
fn kernels_needing_barriers(sources: &[(PathBuf, String)], names: &[String]) -> Vec<bool> {
    let all: String = sources.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("\n");
    const MARKS: [&str; 5] = ["__syncthreads", "__syncwarp", "__shfl", "mma.sync", "ldmatrix.sync"];
    // Every __device__ function: (name, body).
    let functions: Vec<(String, &str)> = all
        .match_indices("__device__ ")
        .map(|(at, _)| {
            let head = &all[at..];
            let paren = head.find('(').unwrap_or(0);
            (head[..paren].split_whitespace().last().unwrap_or("").to_string(), body_after(&all, at))
        })
        .collect();
    let calls = |body: &str, h: &str| body.contains(&format!("{h}(")) || body.contains(&format!("{h}<"));
    // The helpers that synchronise, directly or through another helper (to a fixed point).
    let mut helpers: Vec<&str> = Vec::new();
    loop {
        let before = helpers.len();
        for (name, body) in &functions {
            if !helpers.contains(&name.as_str()) && (MARKS.iter().any(|m| body.contains(m)) || helpers.iter().any(|h| calls(body, h))) {
                helpers.push(name);
            }
        }
        if helpers.len() == before {
            break;
        }
    }
    names
        .iter()
        .map(|n| {
            let at = all.find(&format!(" {n}(")).expect("kernel name vanished");
            let body = body_after(&all, at);
            MARKS.iter().any(|m| body.contains(m)) || helpers.iter().any(|h| calls(body, h))
        })
        .collect()
}

/// The host-emulation library: every .cu after the host header, then the launch runtime and a
/// generated table of (name, entry, argument sizes).
fn build_emulation(root: &Path, sources: &[(PathBuf, String)], names: &[String], out_dir: &Path) {
    let emu = root.join("kernels/emulate");
    let mut tu = format!("#include {:?}\n", emu.join("cuda_host.hpp").display().to_string());
    for (path, _) in sources {
        writeln!(tu, "#include {:?}", path.display().to_string()).unwrap();
    }
    writeln!(tu, "#include {:?}", emu.join("emulate.cpp").display().to_string()).unwrap();
    tu.push_str("namespace fear_emu {\n");
    tu.push_str("template <typename... A> struct ArgSizes { static constexpr unsigned value[] = {(unsigned)sizeof(A)...}; };\n");
    tu.push_str("template <typename... A> static constexpr const unsigned* arg_sizes(void (*)(A...)) { return ArgSizes<A...>::value; }\n");
    for n in names {
        writeln!(tu, "static void entry_{n}(void** a) {{ invoke({n}, a); }}").unwrap();
    }
    tu.push_str("extern const KernelInfo kKernels[] = {\n");
    for (n, barrier) in names.iter().zip(kernels_needing_barriers(sources, names)) {
        writeln!(tu, "    {{\"{n}\", entry_{n}, arity_of({n}), arg_sizes({n}), {barrier}}},").unwrap();
    }
    writeln!(tu, "}};\nextern const int kKernelCount = {};\n}}", names.len()).unwrap();
    let path = out_dir.join("emulated_kernels.cpp");
    std::fs::write(&path, tu).unwrap();
    cc::Build::new()
        .cpp(true)
        .file(&path)
        .flag("-std=c++17")
        .flag("-pthread")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-unused-function")
        .flag_if_supported("-Wno-sign-compare")
        .flag_if_supported("-Wno-unknown-pragmas") // #pragma unroll is for NVRTC
        .opt_level(2)
        .compile("fear_emulated_kernels");
    println!("cargo:rustc-link-lib=pthread");
}

// ---- NVRTC, loaded at build time ----------------------------------------------------------

type Program = *mut std::ffi::c_void;

struct Nvrtc {
    _lib: libloading::Library,
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int,
    create: unsafe extern "C" fn(*mut Program, *const c_char, *const c_char, c_int, *const *const c_char, *const *const c_char) -> c_int,
    compile: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> c_int,
    log_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    log: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    cubin_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    cubin: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    ptx_size: unsafe extern "C" fn(Program, *mut usize) -> c_int,
    ptx: unsafe extern "C" fn(Program, *mut c_char) -> c_int,
    destroy: unsafe extern "C" fn(*mut Program) -> c_int,
    /// nvrtcGetNumSupportedArchs / nvrtcGetSupportedArchs (NVRTC 11.2 and later).
    supported: Option<(unsafe extern "C" fn(*mut c_int) -> c_int, unsafe extern "C" fn(*mut c_int) -> c_int)>,
}

impl Nvrtc {
    /// `$FEAR_NVRTC`, else the usual library names on the loader's path (`LD_LIBRARY_PATH`).
    fn load() -> Result<Nvrtc, String> {
        let candidates: Vec<String> = match std::env::var("FEAR_NVRTC") {
            Ok(p) => vec![p],
            Err(_) => ["libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so"].map(String::from).to_vec(),
        };
        let mut last = String::new();
        for c in &candidates {
            // SAFETY: loading NVRTC runs only its initialisers.
            match unsafe { libloading::Library::new(c) } {
                Ok(lib) => return unsafe { Nvrtc::bind(lib) }.map_err(|e| format!("{c}: {e}")),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("no NVRTC library found (tried {}; last error: {last})", candidates.join(", ")))
    }

    unsafe fn bind(lib: libloading::Library) -> Result<Nvrtc, libloading::Error> {
        macro_rules! sym {
            ($name:literal) => {
                *lib.get($name)?
            };
        }
        Ok(Nvrtc {
            version: sym!(b"nvrtcVersion\0"),
            create: sym!(b"nvrtcCreateProgram\0"),
            compile: sym!(b"nvrtcCompileProgram\0"),
            log_size: sym!(b"nvrtcGetProgramLogSize\0"),
            log: sym!(b"nvrtcGetProgramLog\0"),
            cubin_size: sym!(b"nvrtcGetCUBINSize\0"),
            cubin: sym!(b"nvrtcGetCUBIN\0"),
            ptx_size: sym!(b"nvrtcGetPTXSize\0"),
            ptx: sym!(b"nvrtcGetPTX\0"),
            destroy: sym!(b"nvrtcDestroyProgram\0"),
            supported: lib.get(b"nvrtcGetNumSupportedArchs\0").ok().zip(lib.get(b"nvrtcGetSupportedArchs\0").ok()).map(|(a, b)| (*a, *b)),
            _lib: lib,
        })
    }

    /// Whether this NVRTC can compile for sm_`sm` (asked, else assumed from its version).
    fn supports(&self, sm: u32) -> bool {
        let Some((count, list)) = self.supported else { return self.version() >= (12, 8) };
        let mut n: c_int = 0;
        // SAFETY: the count is written, then a list of that many ints.
        unsafe {
            if count(&mut n) != 0 || n <= 0 {
                return false;
            }
            let mut archs = vec![0 as c_int; n as usize];
            list(archs.as_mut_ptr()) == 0 && archs.contains(&(sm as c_int))
        }
    }

    fn version(&self) -> (i32, i32) {
        let (mut a, mut b) = (0, 0);
        unsafe { (self.version)(&mut a, &mut b) };
        (a, b)
    }

    /// Compiles `source` for one target: Ok((image, log)) or Err(log).
    fn compile(&self, source: &str, sm: u32, cubin: bool) -> Compiled {
        let src = CString::new(source).unwrap();
        let name = CString::new("fear_kernels.cu").unwrap();
        let arch = if cubin { format!("--gpu-architecture=sm_{sm}") } else { format!("--gpu-architecture=compute_{sm}") };
        let mut opts = vec![arch, "--std=c++17".into()];
        if cubin {
            opts.push("--ptxas-options=-v".into());
        }
        let opts: Vec<CString> = opts.into_iter().map(|o| CString::new(o).unwrap()).collect();
        let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        unsafe {
            let mut prog: Program = std::ptr::null_mut();
            let rc = (self.create)(&mut prog, src.as_ptr(), name.as_ptr(), 0, std::ptr::null(), std::ptr::null());
            if rc != 0 {
                return Err(format!("nvrtcCreateProgram failed ({rc})"));
            }
            let rc = (self.compile)(prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr());
            let mut size = 0usize;
            (self.log_size)(prog, &mut size);
            let mut log = vec![0 as c_char; size.max(1)];
            (self.log)(prog, log.as_mut_ptr());
            let log = CStr::from_ptr(log.as_ptr()).to_string_lossy().into_owned();
            if rc != 0 {
                (self.destroy)(&mut prog);
                return Err(log);
            }
            let (size_fn, get_fn) = if cubin { (self.cubin_size, self.cubin) } else { (self.ptx_size, self.ptx) };
            let mut size = 0usize;
            size_fn(prog, &mut size);
            let mut image = vec![0u8; size];
            get_fn(prog, image.as_mut_ptr() as *mut c_char);
            (self.destroy)(&mut prog);
            if !cubin {
                while image.last() == Some(&0) {
                    image.pop();
                }
            }
            Ok((image, log))
        }
    }
}

/// NVRTC's images and logs of earlier runs of this build script, in `target/<profile>/nvrtc-cache`,
/// one per target: the script reruns whenever cargo compiles it anew (a `cargo clippy` after a
/// `cargo test` compiles it under another wrapper, CI's second full NVRTC build), and an unchanged
/// source then needs no compile. An entry is keyed by an FNV-1a hash of everything the compile
/// reads (the joined source, the target, NVRTC's version and this cache's format); a target's
/// entry replaces its older ones. Best effort: an entry that cannot be read or written is a
/// compile as before.
struct CompileCache {
    dir: Option<PathBuf>,
}

/// One cache entry: the target's file-name stem and the hash of its inputs.
struct CacheKey {
    target: String,
    hash: u64,
}

impl CompileCache {
    /// The cache beside `out_dir` (`target/<profile>/build/<crate>-<hash>/out`).
    fn beside(out_dir: &Path) -> CompileCache {
        CompileCache { dir: out_dir.ancestors().nth(3).map(|profile| profile.join("nvrtc-cache")) }
    }

    fn key(&self, nvrtc: &Nvrtc, source: &str, sm: u32, cubin: bool) -> CacheKey {
        let (major, minor) = nvrtc.version();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for bytes in [source.as_bytes(), format!("|sm_{sm}|{cubin}|nvrtc {major}.{minor}|cache v1").as_bytes()] {
            for &b in bytes {
                hash = (hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        CacheKey { target: format!("sm{sm}_{}", if cubin { "cubin" } else { "ptx" }), hash }
    }

    fn paths(&self, key: &CacheKey) -> Option<(PathBuf, PathBuf)> {
        let dir = self.dir.as_ref()?;
        let stem = format!("{}-{:016x}", key.target, key.hash);
        Some((dir.join(format!("{stem}.image")), dir.join(format!("{stem}.log"))))
    }

    fn load(&self, key: &CacheKey) -> Option<(Vec<u8>, String)> {
        let (image, log) = self.paths(key)?;
        Some((std::fs::read(image).ok()?, std::fs::read_to_string(log).ok()?))
    }

    /// Keeps `compiled` as the target's one entry (written under temporary names, then renamed,
    /// the log last: an entry whose log is there is whole).
    fn store(&self, key: &CacheKey, compiled: &(Vec<u8>, String)) {
        let (Some(dir), Some((image, log))) = (self.dir.as_ref(), self.paths(key)) else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let prefix = format!("{}-", key.target);
        let keep = [image.file_name().map(|n| n.to_owned()), log.file_name().map(|n| n.to_owned())];
        for old in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = old.file_name();
            if name.to_string_lossy().starts_with(&prefix) && !keep.contains(&Some(name)) {
                let _ = std::fs::remove_file(old.path());
            }
        }
        let write = |to: &Path, bytes: &[u8]| {
            let part = to.with_extension("part");
            std::fs::write(&part, bytes).and_then(|_| std::fs::rename(&part, to)).is_ok()
        };
        let _ = write(&image, &compiled.0) && write(&log, compiled.1.as_bytes());
    }
}

/// One target's compile: Ok((image, ptxas log)) or Err(NVRTC's log).
type Compiled = Result<(Vec<u8>, String), String>;

/// `source` compiled for every target, in the order given, by as many threads at a time as cargo
/// gives this build jobs (`NUM_JOBS`): the targets are independent programs, which NVRTC compiles
/// concurrently, and each takes minutes. A target compiled before from the same source by the
/// same NVRTC comes from the [`CompileCache`] instead.
fn compile_all(nvrtc: &Nvrtc, source: &str, targets: &[(u32, bool)], cache: &CompileCache) -> Vec<Compiled> {
    let jobs = std::env::var("NUM_JOBS").ok().and_then(|j| j.parse::<usize>().ok()).unwrap_or(1).clamp(1, targets.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Compiled>>> = targets.iter().map(|_| Default::default()).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(sm, cubin)) = targets.get(i) else { break };
                let key = cache.key(nvrtc, source, sm, cubin);
                let compiled = cache.load(&key).map(Ok).unwrap_or_else(|| {
                    let fresh = nvrtc.compile(source, sm, cubin);
                    if let Ok(done) = &fresh {
                        cache.store(&key, done);
                    }
                    fresh
                });
                *results[i].lock().unwrap() = Some(compiled);
            });
        }
    });
    results.into_iter().map(|r| r.into_inner().unwrap().expect("every target compiled")).collect()
}

/// Total spill bytes (stores + loads) in a ptxas report.
fn spill_bytes(report: &str) -> u64 {
    let mut total = 0;
    for line in report.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(3) {
            if w[1] == "bytes" && w[2] == "spill" {
                total += w[0].parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

/// The kernels of a ptxas report with a local-memory stack frame, as "name (N bytes)". A frame
/// means an array indexed at run time (or a spill) lives in local memory: every access to it is
/// a round trip through L1, which is what an unrolled register array avoids.
fn stack_frames(report: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut function = "";
    for line in report.lines() {
        if let Some(at) = line.find("Function properties for ") {
            function = line[at + "Function properties for ".len()..].trim();
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(4) {
            if w[1] == "bytes" && w[2] == "stack" && w[3].starts_with("frame") && w[0] != "0" {
                found.push(format!("{function} ({} bytes)", w[0]));
            }
        }
    }
    found
}

/// Compiles every target where NVRTC allows and returns the Rust items describing the results.
fn nvrtc_artifacts(sources: &[(PathBuf, String)], out_dir: &Path) -> String {
    let strict = std::env::var("FEAR_REQUIRE_NVRTC").is_ok_and(|v| v == "1");
    let turned_off = std::env::var("FEAR_NVRTC").is_ok_and(|v| v == "off");
    if strict && turned_off {
        panic!("FEAR_REQUIRE_NVRTC=1 and FEAR_NVRTC=off contradict each other: unset one");
    }
    let files: String = sources.iter().map(|(p, t)| format!("// ---- {}\n{t}\n", p.file_name().unwrap().to_string_lossy())).collect();
    let source = format!("{PRELUDE}{files}");
    let mut items = String::new();
    let loaded = if turned_off { Err("FEAR_NVRTC=off".to_string()) } else { Nvrtc::load() };
    let nvrtc = match loaded {
        Ok(n) => n,
        Err(why) => {
            if strict {
                panic!("FEAR_REQUIRE_NVRTC=1 but {why}");
            }
            // Cargo shows this to everyone who builds: say plainly that nothing is wrong.
            if !turned_off {
                println!("cargo:warning=note (nothing is wrong): no NVRTC library at build time, so the CUDA kernels are embedded as source and compiled when a GPU is first used (NVRTC needed then); CPU runs need none. Detail: {why}");
            }
            writeln!(
                items,
                "pub const NVRTC_VERSION: Option<(i32, i32)> = None;\npub const BUILD_NOTE: &str = {:?};",
                format!("no NVRTC at build time: {why}")
            )
            .unwrap();
            items.push_str("pub const IMAGES: &[Image] = &[];\n");
            return items;
        }
    };
    let (major, minor) = nvrtc.version();
    let mut images = Vec::new();
    let mut notes = Vec::new();
    let mut wanted = Vec::new();
    for &(sm, cubin) in TARGETS {
        if sm < 75 && major >= 13 {
            notes.push(format!("sm_{sm} skipped: NVRTC {major}.{minor} no longer targets it (use NVRTC 12.x)"));
        } else if OPTIONAL_TARGETS.contains(&sm) && !nvrtc.supports(sm) {
            notes.push(format!("sm_{sm} skipped: NVRTC {major}.{minor} does not target it (NVRTC 12.8 or later does)"));
        } else {
            wanted.push((sm, cubin));
        }
    }
    let cache = CompileCache::beside(out_dir);
    for ((sm, cubin), compiled) in wanted.iter().copied().zip(compile_all(&nvrtc, &source, &wanted, &cache)) {
        let kind = if cubin { "cubin" } else { "ptx" };
        match compiled {
            Ok((image, log)) => {
                let spills = spill_bytes(&log);
                if spills > 0 {
                    let msg = format!("kernels spill {spills} bytes of registers on sm_{sm}:\n{log}");
                    if strict {
                        panic!("{msg}");
                    }
                    println!("cargo:warning={}", msg.lines().next().unwrap());
                }
                let frames = stack_frames(&log);
                if !frames.is_empty() {
                    let msg = format!("kernels use local-memory stack frames on sm_{sm}: {}\n{log}", frames.join(", "));
                    if strict {
                        panic!("{msg}");
                    }
                    println!("cargo:warning={}", msg.lines().next().unwrap());
                }
                if cubin {
                    // Kept beside the images for reading: registers, shared memory, frames per kernel.
                    std::fs::write(out_dir.join(format!("ptxas_sm{sm}.txt")), &log).unwrap();
                }
                let file = out_dir.join(format!("fear_kernels_sm{sm}.{kind}"));
                std::fs::write(&file, &image).unwrap();
                images.push((sm, cubin, file, log));
            }
            Err(log) => panic!("NVRTC {major}.{minor} failed to compile the kernels (src/engine/ops/*/*.cu) for sm_{sm} ({kind}):\n{log}"),
        }
    }
    writeln!(items, "pub const NVRTC_VERSION: Option<(i32, i32)> = Some(({major}, {minor}));").unwrap();
    writeln!(items, "pub const BUILD_NOTE: &str = {:?};", notes.join("; ")).unwrap();
    items.push_str("pub const IMAGES: &[Image] = &[\n");
    for (sm, cubin, file, log) in images {
        writeln!(items, "    Image {{ sm: {sm}, cubin: {cubin}, bytes: include_bytes!({:?}), ptxas_report: {log:?} }},", file.display().to_string()).unwrap();
    }
    items.push_str("];\n");
    items
}
