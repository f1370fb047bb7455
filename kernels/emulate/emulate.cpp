// The emulated launch: runs a kernel's grid on the CPU (see cuda_host.hpp for the model).
// Exposed to Rust as fear_emu_launch; build.rs appends the table of kernels (name, entry,
// argument sizes) generated from kernels/*.cu.
#include <ucontext.h>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local uint3 blockDim;
thread_local uint3 gridDim;

namespace fear_emu {

// A kernel entry: unpacks the argument array (as cuLaunchKernel takes it) and calls the kernel.
typedef void (*Entry)(void** args);

struct KernelInfo {
    const char* name;
    Entry entry;
    int arity;
    const unsigned* arg_sizes;
    // Whether the kernel synchronises its block (found by build.rs in the source); kernels that
    // do not run their threads as plain calls instead of fibers.
    bool needs_barrier;
};

template <typename... A, size_t... I>
static void invoke_impl(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<A*>(args[I])...);
}
template <typename... A>
static void invoke(void (*f)(A...), void** args) {
    invoke_impl(f, args, std::index_sequence_for<A...>{});
}
template <typename... A>
static constexpr int arity_of(void (*)(A...)) { return (int)sizeof...(A); }

// Context switches between fibers. On x86-64 a hand-written switch saves the six callee-saved
// registers on the old stack and swaps stack pointers (no system call, unlike swapcontext, which
// saves the signal mask each time); elsewhere ucontext.
#if defined(__x86_64__)
extern "C" void fear_emu_switch(void** save_sp, void* next_sp);
__asm__(
    ".text\n"
    ".globl fear_emu_switch\n"
    ".type fear_emu_switch,@function\n"
    "fear_emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size fear_emu_switch, .-fear_emu_switch\n");

struct Context {
    void* sp = nullptr;
};

// Makes `c` start `fn` on `stack`: a frame that fear_emu_switch's pops and `ret` consume, leaving
// the stack pointer as a call would (8 past a 16-byte boundary).
static void prepare(Context& c, char* stack, size_t bytes, void (*fn)()) {
    uintptr_t top = ((uintptr_t)(stack + bytes)) & ~(uintptr_t)15;
    void** sp = (void**)top - 8;
    for (int i = 0; i < 6; ++i) sp[i] = nullptr;
    sp[6] = (void*)fn;
    sp[7] = nullptr;
    c.sp = sp;
}
static void switch_context(Context& from, Context& to) { fear_emu_switch(&from.sp, to.sp); }
#else
struct Context {
    ucontext_t uc;
};
static void prepare(Context& c, char* stack, size_t bytes, void (*fn)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, fn, 0);
}
static void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// Each CUDA thread of a block is a fiber; the block's scheduler resumes them round by round.
struct Fiber {
    Context context;
    uint3 index;
    bool done;
};

// One thread's deposit for a warp collective: how many collectives it has reached, which one
// this is, and its operands.
struct CollectiveSlot {
    unsigned long long count = 0;
    const char* what = nullptr;
    unsigned char data[64];
};

// One thread's cp.async copies: those issued since its last commit, then its committed groups,
// oldest first.
struct PendingCopy {
    void* shared;
    const void* global;
    unsigned bytes;
};
struct AsyncCopies {
    std::vector<PendingCopy> open;
    std::vector<std::vector<PendingCopy>> groups;
};

struct BlockRun {
    Context scheduler;
    std::vector<Fiber> fibers;
    size_t current = 0;
    Entry entry = nullptr;
    void** args = nullptr;
    std::vector<unsigned long long> exchange_slots;
    std::vector<CollectiveSlot> collective_slots;
    std::vector<AsyncCopies> copies;
};

// The first error a launch's kernel hit (fail), shared by the OS threads running its blocks.
struct LaunchErrors {
    std::mutex lock;
    std::string first;
};
thread_local LaunchErrors* launch_errors = nullptr;

void fail(const char* format, ...) {
    char message[256];
    va_list args;
    va_start(args, format);
    std::vsnprintf(message, sizeof message, format, args);
    va_end(args);
    LaunchErrors* e = launch_errors;
    if (!e) {
        std::fprintf(stderr, "fear emulator: %s\n", message);
        std::abort();
    }
    std::lock_guard<std::mutex> hold(e->lock);
    if (e->first.empty()) e->first = message;
}

static unsigned linear_thread() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
static unsigned block_threads() { return blockDim.x * blockDim.y * blockDim.z; }

static const size_t kStackBytes = 64 * 1024;
thread_local BlockRun* running = nullptr;
thread_local std::vector<char> stacks;
thread_local std::vector<char> dynamic_shared_buffer;

void* dynamic_shared() { return dynamic_shared_buffer.data(); }

void syncthreads() {
    BlockRun* b = running;
    if (b->fibers.empty()) {
        std::fprintf(stderr, "fear emulator: __syncthreads in a kernel that build.rs found barrier-free\n");
        std::abort();
    }
    switch_context(b->fibers[b->current].context, b->scheduler);
}

void warp_gather(const char* what, const void* mine, unsigned bytes, void* all) {
    BlockRun* b = running;
    unsigned me = linear_thread(), count = block_threads();
    if (bytes > sizeof(CollectiveSlot::data) || count % 32 != 0) {
        fail("%s: %u threads per block (warp collectives need whole warps)", what, count);
        std::memset(all, 0xff, 32 * (size_t)bytes);
        return;
    }
    CollectiveSlot& slot = b->collective_slots[me];
    slot.count += 1;
    slot.what = what;
    std::memcpy(slot.data, mine, bytes);
    syncthreads();
    // After the barrier every live thread has made its deposit for this round: each must be at
    // this same collective (the count of collectives it reached and their name agree).
    bool together = true;
    for (unsigned t = 0; t < count && together; ++t) {
        const CollectiveSlot& other = b->collective_slots[t];
        if (other.count != slot.count || !other.what || std::strcmp(other.what, what) != 0) {
            fail("%s: thread %u of the block did not reach it with thread %u (every lane of a warp must execute the same collective, "
                 "and the emulation runs it as a block barrier)",
                 what, t, me);
            together = false;
        }
    }
    unsigned first_lane = me & ~31u;
    for (unsigned l = 0; l < 32; ++l) {
        if (together) std::memcpy((char*)all + (size_t)l * bytes, b->collective_slots[first_lane + l].data, bytes);
        else std::memset((char*)all + (size_t)l * bytes, 0xff, bytes);
    }
    syncthreads();
}

void cp_async(void* shared, const void* global, unsigned bytes) {
    if ((uintptr_t)shared % bytes != 0 || (uintptr_t)global % bytes != 0)
        fail("cp.async of %u bytes from %p to %p: both addresses must be aligned to the size", bytes, global, shared);
    running->copies[linear_thread()].open.push_back(PendingCopy{shared, global, bytes});
}

void cp_async_commit() {
    AsyncCopies& mine = running->copies[linear_thread()];
    mine.groups.push_back(std::move(mine.open));
    mine.open.clear();
}

void cp_async_wait(int pending) {
    AsyncCopies& mine = running->copies[linear_thread()];
    size_t land = mine.groups.size() > (size_t)pending ? mine.groups.size() - (size_t)pending : 0;
    for (size_t g = 0; g < land; ++g)
        for (const PendingCopy& c : mine.groups[g]) std::memcpy(c.shared, c.global, c.bytes);
    mine.groups.erase(mine.groups.begin(), mine.groups.begin() + (long)land);
}

unsigned long long exchange(unsigned long long mine, unsigned source) {
    BlockRun* b = running;
    b->exchange_slots[threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)] = mine;
    syncthreads();
    unsigned long long got = b->exchange_slots[source];
    syncthreads();
    return got;
}

// A fiber's first frame: runs the kernel for this thread, then hands control back for good.
static void fiber_main() {
    BlockRun* b = running;
    b->entry(b->args);
    Fiber& self = b->fibers[b->current];
    self.done = true;
    switch_context(self.context, b->scheduler);
    std::abort();  // a finished fiber is never resumed
}

// Runs one block of a kernel that never synchronises: each thread is a plain call.
// Per-thread state of a block (the collectives' deposits, the queued copies), fresh for each.
static void reset_thread_state(BlockRun& b, size_t count) {
    b.collective_slots.assign(count, CollectiveSlot{});
    b.copies.assign(count, AsyncCopies{});
}

static void run_block_directly(BlockRun& b, uint3 block, uint3 dims) {
    reset_thread_state(b, (size_t)dims.x * dims.y * dims.z);
    blockIdx = block;
    blockDim = dims;
    running = &b;
    for (unsigned z = 0; z < dims.z; ++z)
        for (unsigned y = 0; y < dims.y; ++y)
            for (unsigned x = 0; x < dims.x; ++x) {
                threadIdx = uint3{x, y, z};
                b.entry(b.args);
            }
    running = nullptr;
}

// Runs one block to completion on the calling OS thread, its threads as fibers.
static void run_block(BlockRun& b, uint3 block, uint3 dims) {
    size_t count = (size_t)dims.x * dims.y * dims.z;
    if (stacks.size() < count * kStackBytes) stacks.assign(count * kStackBytes, 0);
    b.fibers.assign(count, Fiber{});
    b.exchange_slots.assign(count, 0);
    reset_thread_state(b, count);
    blockIdx = block;
    blockDim = dims;
    running = &b;
    for (size_t t = 0; t < count; ++t) {
        Fiber& f = b.fibers[t];
        f.index = uint3{(unsigned)(t % dims.x), (unsigned)(t / dims.x % dims.y), (unsigned)(t / dims.x / dims.y)};
        f.done = false;
        prepare(f.context, stacks.data() + t * kStackBytes, kStackBytes, fiber_main);
    }
    // Rounds alternate the order threads run in, so a missing barrier shows whichever way the
    // race goes (a thread reading a slot a higher- or a lower-numbered thread writes).
    bool forward = true;
    for (bool live = true; live; forward = !forward) {
        live = false;
        for (size_t i = 0; i < count; ++i) {
            size_t t = forward ? i : count - 1 - i;
            if (b.fibers[t].done) continue;
            b.current = t;
            threadIdx = b.fibers[t].index;
            switch_context(b.scheduler, b.fibers[t].context);
            live |= !b.fibers[t].done;
        }
    }
    running = nullptr;
}

}  // namespace fear_emu

namespace fear_emu {
extern const KernelInfo kKernels[];
extern const int kKernelCount;
}

// Launches `name` over grid x block with cuLaunchKernel's argument array. Checks the argument
// count and each argument's size against the kernel's C signature, so the Rust launch code's
// argument lists are verified wherever tests run. Returns 0, or 1 with a message in `err`.
// The kernel `name` after checking its argument count and sizes; null with a message in `err`.
static const fear_emu::KernelInfo* find_checked(const char* name, int nargs, const unsigned* arg_sizes, char* err, int err_len) {
    using namespace fear_emu;
    const KernelInfo* k = nullptr;
    for (int i = 0; i < kKernelCount; ++i)
        if (std::strcmp(kKernels[i].name, name) == 0) k = &kKernels[i];
    if (!k) {
        std::snprintf(err, err_len, "no kernel named %s", name);
        return nullptr;
    }
    if (k->arity != nargs) {
        std::snprintf(err, err_len, "%s takes %d arguments, got %d", name, k->arity, nargs);
        return nullptr;
    }
    for (int i = 0; i < nargs; ++i) {
        if (k->arg_sizes[i] != arg_sizes[i]) {
            std::snprintf(err, err_len, "%s argument %d is %u bytes, got %u", name, i, k->arg_sizes[i], arg_sizes[i]);
            return nullptr;
        }
    }
    return k;
}

// Checks a launch's kernel name and argument list without running it: 0, or 1 with a message.
extern "C" int fear_emu_check(const char* name, int nargs, const unsigned* arg_sizes, char* err, int err_len) {
    return find_checked(name, nargs, arg_sizes, err, err_len) ? 0 : 1;
}

// `shared_bytes` of dynamic shared memory (`extern __shared__`, FEAR_DYNAMIC_SHARED) per block:
// like static __shared__, one buffer per OS thread, which runs one block at a time.
extern "C" int fear_emu_launch(const char* name, const unsigned* grid, const unsigned* block, unsigned shared_bytes,
                               void** args, int nargs, const unsigned* arg_sizes, char* err, int err_len) {
    using namespace fear_emu;
    const KernelInfo* k = find_checked(name, nargs, arg_sizes, err, err_len);
    if (!k) return 1;
    unsigned long long threads = (unsigned long long)block[0] * block[1] * block[2];
    if (threads == 0 || threads > 1024) {
        std::snprintf(err, err_len, "%s: %llu threads per block (1..1024)", name, threads);
        return 1;
    }
    unsigned long long blocks = (unsigned long long)grid[0] * grid[1] * grid[2];
    uint3 g{grid[0], grid[1], grid[2]}, b{block[0], block[1], block[2]};
    std::atomic<unsigned long long> next{0};
    LaunchErrors errors;
    auto worker = [&]() {
        launch_errors = &errors;
        gridDim = g;
        // Fresh each launch and filled with NaN bytes: a kernel must write it before reading.
        dynamic_shared_buffer.assign(shared_bytes, (char)0xff);
        BlockRun run;
        run.entry = k->entry;
        run.args = args;
        for (unsigned long long i; (i = next.fetch_add(1)) < blocks;) {
            uint3 at{(unsigned)(i % g.x), (unsigned)(i / g.x % g.y), (unsigned)(i / g.x / g.y)};
            if (k->needs_barrier) run_block(run, at, b);
            else run_block_directly(run, at, b);
        }
        launch_errors = nullptr;
    };
    unsigned workers = std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), (unsigned)std::min<unsigned long long>(blocks, 64)));
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < workers; ++i) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    if (!errors.first.empty()) {
        std::snprintf(err, err_len, "%s: %s", name, errors.first.c_str());
        return 1;
    }
    return 0;
}

extern "C" int fear_emu_sm() { return FEAR_EMULATED_SM; }

extern "C" int fear_emu_kernel_count() { return fear_emu::kKernelCount; }
extern "C" const char* fear_emu_kernel_name(int i) { return fear_emu::kKernels[i].name; }

// The rounding of kernels/mma.cuh as compiled here (the kernels' own source), for the test that
// holds it bit for bit to src/engine/precision.rs: 0 tf32, 1 bf16, 2 f16.
extern "C" float fear_emu_round(int precision, float x) {
    switch (precision) {
    case 0: return fear_round_tf32(x);
    case 1: return fear_bf16_to_f32(fear_f32_to_bf16(x));
    default: return fear_f16_to_f32(fear_f32_to_f16(x));
    }
}
