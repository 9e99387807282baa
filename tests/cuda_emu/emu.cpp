// CPU emulator runtime for the fake <cuda_runtime.h>: fibers for the threads of a block, a scheduler that
// completes barriers and warp intrinsics once every participant has arrived, per-block shared memory, and the
// host-side runtime API (device memory is host memory).
//
// Why fibers on one OS thread: kernels are written for threads that run concurrently between sync points. On
// a fiber, code between two sync points runs without interruption, which makes the emulation deterministic for
// a given scheduling seed, fast (a switch costs a few nanoseconds), and lets the scheduler see exactly who waits
// where, so a deadlock or a divergent barrier becomes a reported error instead of a hang.
#include "cuda_runtime.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

#if !defined(__x86_64__) && !defined(EMU_UCONTEXT)
#define EMU_UCONTEXT 1
#endif
#if defined(EMU_UCONTEXT)
#include <ucontext.h>
#endif

#define EMU_EXPORT extern "C" __attribute__((visibility("default")))

// ---- context switching --------------------------------------------------------------------------------------
#if !defined(EMU_UCONTEXT)
// Saves the callee-saved registers and the SSE/x87 control words of the System V x86-64 ABI on the current
// stack, stores the stack pointer in *save and continues on `to`, a stack saved the same way (or prepared by
// ctx_init). Hidden, so that several emulated libraries can be loaded in one process.
extern "C" void emu_ctx_switch(void** save, void* to);
asm(R"(
  .text
  .globl emu_ctx_switch
  .hidden emu_ctx_switch
  .type emu_ctx_switch, @function
emu_ctx_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  stmxcsr 8(%rsp)
  fnstcw (%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr 8(%rsp)
  fldcw (%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_ctx_switch, .-emu_ctx_switch
)");
#endif

namespace emu {

ThreadState* g_thread = nullptr;
uint3 g_block_idx{0, 0, 0}, g_block_dim{1, 1, 1}, g_grid_dim{1, 1, 1};

namespace {

struct Context {
#if defined(EMU_UCONTEXT)
  ucontext_t uc;
#else
  void* sp = nullptr;
#endif
};

void ctx_init(Context& c, char* stack, size_t size, void (*entry)()) {
#if defined(EMU_UCONTEXT)
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
#else
  // Frame popped by emu_ctx_switch: x87 cw, mxcsr, r15..rbp, return address = entry; entry then sees the
  // stack as after a call (rsp % 16 == 8) with a null return address above it.
  auto top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  auto* sp = reinterpret_cast<uint64_t*>(top - 80);
  std::memset(sp, 0, 80);
  sp[0] = 0x037F;             // x87 control word (default)
  sp[1] = 0x1F80;             // mxcsr (default: all exceptions masked, round to nearest)
  sp[8] = reinterpret_cast<uint64_t>(entry);
  c.sp = sp;
#endif
}

inline void ctx_switch(Context& from, Context& to) {
#if defined(EMU_UCONTEXT)
  swapcontext(&from.uc, &to.uc);
#else
  emu_ctx_switch(&from.sp, to.sp);
#endif
}

// ---- configuration and statistics (set from Python through the emu_* exports) ----------------------------
struct Config {
  int device = 0;
  int device_count = 64;
  int sms = 132;
  int blocks_per_sm = 4;
  unsigned long long seed = 0;  // 0: resume runnable threads in index order; otherwise a shuffled order
  int poison = 0xFF;            // byte that fills shared memory at the start of every block
} g_cfg;

struct Stats {
  unsigned long long launches = 0, blocks = 0, switches = 0;
  unsigned long long alloc_total = 0, alloc_calls = 0, alloc_live = 0;
} g_stats;

std::string g_fault_msg;                  // first emulated fault since the last emu_clear_fault()
cudaError_t g_fault = cudaSuccess;        // sticky, as a device fault is
cudaError_t g_last_error = cudaSuccess;   // cleared by cudaGetLastError
std::unordered_map<void*, size_t> g_allocs;
std::unordered_map<const void*, int> g_func_smem;  // kernel -> max dynamic shared memory opted into

constexpr size_t kDefaultDynamicSmem = 48 * 1024;
constexpr size_t kMaxSmemPerBlock = 232448;  // H100 opt-in limit
constexpr size_t kStaticSmemLimit = 48 * 1024;
constexpr size_t kStackBytes = EMU_ASAN ? (512 << 10) : (256 << 10);

// ---- threads of the running block -------------------------------------------------------------------------
enum class State : unsigned char { Ready, WaitWarp, WaitBlock, Exited, Failed };

struct Fiber {
  ThreadState ts{};
  int linear = 0;
  State state = State::Ready;
  Op op = Op::None;
  unsigned mask = 0;
  int arg = 0, width = 32;
  unsigned long long value = 0, result = 0;
  std::source_location loc;
  Context ctx;
  char* stack = nullptr;
  void* fake_stack = nullptr;  // ASan's fake stack of this fiber while it is switched out
};

struct SharedVar {
  const void* key;
  void* ptr;
  size_t bytes;
};

struct Run {
  std::vector<Fiber> fibers;  // sized once to the largest block seen; stacks persist across launches
  Context sched;
  void* sched_fake_stack = nullptr;
  const void* sched_stack_bottom = nullptr;
  size_t sched_stack_size = 0;
  Fiber* cur = nullptr;
  int nthreads = 0;
  Body body = nullptr;
  void* ctx = nullptr;
  bool failed = false;
  std::string error;
  std::vector<SharedVar> shared;
  void* dyn = nullptr;
  size_t dyn_bytes = 0;
  unsigned long long rng = 0;
} g_run;

const char* op_name(Op op) {
  switch (op) {
    case Op::SyncThreads: return "__syncthreads";
    case Op::SyncOr: return "__syncthreads_or";
    case Op::SyncAnd: return "__syncthreads_and";
    case Op::SyncCount: return "__syncthreads_count";
    case Op::SyncWarp: return "__syncwarp";
    case Op::ShflIdx: return "__shfl_sync";
    case Op::ShflUp: return "__shfl_up_sync";
    case Op::ShflDown: return "__shfl_down_sync";
    case Op::ShflXor: return "__shfl_xor_sync";
    case Op::Ballot: return "__ballot_sync";
    case Op::Any: return "__any_sync";
    case Op::All: return "__all_sync";
    case Op::MatchAny: return "__match_any_sync";
    case Op::ReduceAddU: case Op::ReduceAddI: return "__reduce_add_sync";
    case Op::ReduceMinU: case Op::ReduceMinI: return "__reduce_min_sync";
    case Op::ReduceMaxU: case Op::ReduceMaxI: return "__reduce_max_sync";
    case Op::ReduceAnd: return "__reduce_and_sync";
    case Op::ReduceOr: return "__reduce_or_sync";
    case Op::ReduceXor: return "__reduce_xor_sync";
    default: return "?";
  }
}

std::string where(const std::source_location& loc) {
  const char* file = loc.file_name();
  const char* slash = std::strrchr(file, '/');
  return std::string(slash ? slash + 1 : file) + ":" + std::to_string(loc.line());
}

std::string thread_name(const Fiber& f) {
  return "thread (" + std::to_string(f.ts.thread_idx.x) + "," + std::to_string(f.ts.thread_idx.y) + "," +
         std::to_string(f.ts.thread_idx.z) + ")";
}

unsigned existing_lanes(int warp) {
  const int n = g_run.nthreads - warp * 32;
  return n >= 32 ? kFullMask : ((1u << n) - 1u);
}

unsigned long long next_random() {  // xorshift64*
  unsigned long long& x = g_run.rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  return x * 0x2545F4914F6CDD1DULL;
}

void record_error(const std::string& msg) {
  if (!g_run.failed) {
    g_run.failed = true;
    g_run.error = msg;
  }
}

// ---- fiber side ---------------------------------------------------------------------------------------------
void switch_to_scheduler(Fiber* f, bool final) {
  ++g_stats.switches;
#if EMU_ASAN
  __sanitizer_start_switch_fiber(final ? nullptr : &f->fake_stack, g_run.sched_stack_bottom,
                                 g_run.sched_stack_size);
#else
  (void)final;
#endif
  ctx_switch(f->ctx, g_run.sched);
#if EMU_ASAN
  __sanitizer_finish_switch_fiber(f->fake_stack, nullptr, nullptr);
#endif
}

[[noreturn]] void fiber_entry() {
#if EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &g_run.sched_stack_bottom, &g_run.sched_stack_size);
#endif
  Fiber* f = g_run.cur;
  g_run.body(g_run.ctx);
  f = g_run.cur;
  f->state = State::Exited;
  switch_to_scheduler(f, true);
  std::abort();  // an exited fiber is never resumed
}

Fiber* current_fiber(const char* what, const std::source_location& loc) {
  if (g_thread == nullptr) {
    std::fprintf(stderr, "cuda_emu: %s at %s outside a kernel\n", what, where(loc).c_str());
    std::abort();
  }
  return g_run.cur;
}

// ---- scheduler side -----------------------------------------------------------------------------------------
void resume(Fiber* f) {
  g_run.cur = f;
  g_thread = &f->ts;
#if EMU_ASAN
  __sanitizer_start_switch_fiber(&g_run.sched_fake_stack, f->stack, kStackBytes);
#endif
  ctx_switch(g_run.sched, f->ctx);
#if EMU_ASAN
  __sanitizer_finish_switch_fiber(g_run.sched_fake_stack, nullptr, nullptr);
#endif
  g_thread = nullptr;
}

// The value lane `lane` reads in a shuffle (PTX shfl.sync semantics for a segment of `width` lanes), or -1
// when it keeps its own value.
int shuffle_source(Op op, int lane, int b, int width) {
  const int seg = width - 1;  // lane bits inside a segment
  const int min_lane = lane & ~seg, max_lane = min_lane | seg;
  b &= 31;
  switch (op) {
    case Op::ShflIdx: return min_lane | (b & seg);
    case Op::ShflUp: return lane - b >= min_lane ? lane - b : -1;
    case Op::ShflDown: return lane + b <= max_lane ? lane + b : -1;
    case Op::ShflXor: return (lane ^ b) <= max_lane ? (lane ^ b) : -1;
    default: return -1;
  }
}

// Completes the warp op of the lanes in `group` (all waiting with the same mask). False on an error.
bool complete_warp_group(Fiber* base, unsigned group) {
  Fiber* first = nullptr;
  for (int l = 0; l < 32; ++l) {
    if (!(group >> l & 1u)) continue;
    Fiber& f = base[l];
    if (first == nullptr) {
      first = &f;
    } else if (f.op != first->op || f.width != first->width) {
      record_error(thread_name(f) + " is at " + op_name(f.op) + " (" + where(f.loc) + ") while " +
                   thread_name(*first) + " of the same mask is at " + op_name(first->op) + " (" +
                   where(first->loc) + ")");
      return false;
    }
  }
  const Op op = first->op;
  unsigned long long combined = 0;
  bool all = true;
  long long smin = LLONG_MAX, smax = LLONG_MIN;
  unsigned long long umin_v = ~0ull, umax_v = 0, uand = ~0ull, uor = 0, uxor = 0, sum = 0;
  for (int l = 0; l < 32; ++l) {
    if (!(group >> l & 1u)) continue;
    const unsigned long long v = base[l].value;
    if (v) combined |= 1ull << l;
    all = all && v != 0;
    const int sv = int(unsigned(v));
    smin = std::min<long long>(smin, sv);
    smax = std::max<long long>(smax, sv);
    umin_v = std::min(umin_v, v);
    umax_v = std::max(umax_v, v);
    uand &= v;
    uor |= v;
    uxor ^= v;
    sum += v;
  }
  for (int l = 0; l < 32; ++l) {
    if (!(group >> l & 1u)) continue;
    Fiber& f = base[l];
    switch (op) {
      case Op::ShflIdx: case Op::ShflUp: case Op::ShflDown: case Op::ShflXor: {
        if (f.width < 1 || f.width > 32 || (f.width & (f.width - 1))) {
          record_error(std::string(op_name(op)) + " at " + where(f.loc) + ": width " + std::to_string(f.width) +
                       " is not a power of two in 1..32");
          return false;
        }
        const int src = shuffle_source(op, l, f.arg, f.width);
        if (src >= 0 && !(group >> src & 1u)) {
          record_error(std::string(op_name(op)) + " at " + where(f.loc) + ": lane " + std::to_string(l) +
                       " reads lane " + std::to_string(src) + ", which is not in the mask (undefined value)");
          return false;
        }
        f.result = src >= 0 ? base[src].value : f.value;
        break;
      }
      case Op::Ballot: f.result = combined; break;
      case Op::Any: f.result = combined != 0; break;
      case Op::All: f.result = all; break;
      case Op::SyncWarp: f.result = 0; break;
      case Op::MatchAny: {
        unsigned m = 0;
        for (int j = 0; j < 32; ++j)
          if ((group >> j & 1u) && base[j].value == f.value) m |= 1u << j;
        f.result = m;
        break;
      }
      case Op::ReduceAddU: case Op::ReduceAddI: f.result = unsigned(sum); break;
      case Op::ReduceMinU: f.result = umin_v; break;
      case Op::ReduceMaxU: f.result = umax_v; break;
      case Op::ReduceMinI: f.result = unsigned(int(smin)); break;
      case Op::ReduceMaxI: f.result = unsigned(int(smax)); break;
      case Op::ReduceAnd: f.result = uand; break;
      case Op::ReduceOr: f.result = uor; break;
      case Op::ReduceXor: f.result = uxor; break;
      default: record_error("internal: unknown warp op"); return false;
    }
  }
  for (int l = 0; l < 32; ++l)
    if (group >> l & 1u) base[l].state = State::Ready;
  return true;
}

// Completes every warp op whose mask's lanes have all arrived with that same mask. Returns whether any did.
bool complete_warp_ops() {
  bool progress = false;
  const int nwarps = (g_run.nthreads + 31) / 32;
  for (int w = 0; w < nwarps && !g_run.failed; ++w) {
    Fiber* base = &g_run.fibers[size_t(w) * 32];
    const int lanes = std::min(32, g_run.nthreads - w * 32);
    for (int l = 0; l < lanes; ++l) {
      if (base[l].state != State::WaitWarp) continue;
      const unsigned m = base[l].mask;
      bool arrived = true;
      for (int j = 0; j < lanes && arrived; ++j)
        if ((m >> j & 1u) && (base[j].state != State::WaitWarp || base[j].mask != m)) arrived = false;
      if (arrived && complete_warp_group(base, m)) progress = true;
    }
  }
  return progress;
}

std::string describe_waits() {
  std::string out;
  int shown = 0, exited = 0;
  for (int i = 0; i < g_run.nthreads; ++i) {
    const Fiber& f = g_run.fibers[i];
    if (f.state == State::Exited) {
      ++exited;
    } else if (shown < 6) {
      char mask[16];
      std::snprintf(mask, sizeof mask, "%08x", f.mask);
      out += "; " + thread_name(f) + " at " + op_name(f.op) + " (" + where(f.loc) + ")";
      if (f.state == State::WaitWarp) out += std::string(" mask 0x") + mask;
      ++shown;
    }
  }
  return out + "; " + std::to_string(exited) + " of " + std::to_string(g_run.nthreads) + " threads exited";
}

bool complete_block_barrier() {
  int exited = 0;
  Fiber* first = nullptr;
  for (int i = 0; i < g_run.nthreads; ++i) {
    Fiber& f = g_run.fibers[i];
    if (f.state == State::Exited) {
      ++exited;
      continue;
    }
    if (f.state != State::WaitBlock) return false;
    if (first == nullptr) {
      first = &f;
    } else if (f.op != first->op || f.loc.line() != first->loc.line() || f.loc.column() != first->loc.column() ||
               std::strcmp(f.loc.file_name(), first->loc.file_name()) != 0) {
      record_error("divergent barriers: " + thread_name(*first) + " waits at " + op_name(first->op) + " (" +
                   where(first->loc) + "), " + thread_name(f) + " at " + op_name(f.op) + " (" + where(f.loc) + ")");
      return false;
    }
  }
  if (first == nullptr) return false;
  if (exited > 0) {
    record_error(std::string(op_name(first->op)) + " (" + where(first->loc) + ") reached after " +
                 std::to_string(exited) + " threads of the block exited (undefined behaviour in CUDA)");
    return false;
  }
  int count = 0;
  for (int i = 0; i < g_run.nthreads; ++i) count += g_run.fibers[i].value != 0;
  int result = 0;
  switch (first->op) {
    case Op::SyncOr: result = count > 0; break;
    case Op::SyncAnd: result = count == g_run.nthreads; break;
    case Op::SyncCount: result = count; break;
    default: break;
  }
  for (int i = 0; i < g_run.nthreads; ++i) {
    g_run.fibers[i].result = unsigned(result);
    g_run.fibers[i].state = State::Ready;
  }
  return true;
}

void ensure_fibers(int n) {
  auto& fibers = g_run.fibers;
  if (int(fibers.size()) >= n) return;
  const long page = sysconf(_SC_PAGESIZE);
  const size_t old = fibers.size();
  fibers.resize(size_t(n));
  for (size_t i = old; i < fibers.size(); ++i) {
    // One guard page below each stack, so that an overflow faults instead of corrupting a neighbour.
    void* mem = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      std::perror("cuda_emu: mmap of a fiber stack");
      std::abort();
    }
    mprotect(mem, size_t(page), PROT_NONE);
    fibers[i].stack = static_cast<char*>(mem) + page;
  }
}

// Runs one block to completion; false (with g_run.error) on an emulated fault.
bool run_block(const dim3& block) {
  const int n = g_run.nthreads;
  for (int i = 0; i < n; ++i) {
    Fiber& f = g_run.fibers[i];
    f.linear = i;
    f.ts.thread_idx = uint3{unsigned(i) % block.x, unsigned(i) / block.x % block.y, unsigned(i) / (block.x * block.y)};
    f.ts.lane = i & 31;
    f.state = State::Ready;
    f.op = Op::None;
    f.fake_stack = nullptr;
#if EMU_ASAN
    __asan_unpoison_memory_region(f.stack, kStackBytes);  // a fault may have left frames poisoned
#endif
    ctx_init(f.ctx, f.stack, kStackBytes, fiber_entry);
  }
  std::vector<int> order;
  order.reserve(size_t(n));
  for (;;) {
    order.clear();
    for (int i = 0; i < n; ++i)
      if (g_run.fibers[i].state == State::Ready) order.push_back(i);
    if (g_cfg.seed != 0) {
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[next_random() % i]);
    }
    for (int i : order) {
      resume(&g_run.fibers[i]);
      if (g_run.failed) return false;
    }
    if (complete_warp_ops()) continue;
    if (g_run.failed) return false;
    bool done = true;
    for (int i = 0; i < n && done; ++i) done = g_run.fibers[i].state == State::Exited;
    if (done) return true;
    if (complete_block_barrier()) continue;
    if (!g_run.failed) record_error("deadlock: no barrier or warp op can complete" + describe_waits());
    return false;
  }
}

void set_fault(cudaError_t err, const std::string& msg) {
  if (g_fault == cudaSuccess) {
    g_fault = err;
    g_fault_msg = msg;
  }
}

void free_block_memory() {
  for (auto& v : g_run.shared) std::free(v.ptr);
  g_run.shared.clear();
  std::free(g_run.dyn);
  g_run.dyn = nullptr;
}

}  // namespace

// ---- calls from kernel code ---------------------------------------------------------------------------------
unsigned long long warp_op(Op op, unsigned mask, unsigned long long value, int arg, int width,
                           const std::source_location& loc) {
  Fiber* f = current_fiber(op_name(op), loc);
  const int lane = f->linear & 31;
  const unsigned lanes = existing_lanes(f->linear / 32);
  if (!(mask >> lane & 1u)) fail((std::string(op_name(op)) + ": the calling lane is not in the mask").c_str(), loc);
  if (mask & ~lanes) {
    fail((std::string(op_name(op)) + ": the mask names lanes that do not exist (block of " +
          std::to_string(g_run.nthreads) + " threads)").c_str(), loc);
  }
  f->state = State::WaitWarp;
  f->op = op;
  f->mask = mask;
  f->value = value;
  f->arg = arg;
  f->width = width;
  f->loc = loc;
  switch_to_scheduler(f, false);
  return f->result;
}

int block_barrier(Op op, int pred, const std::source_location& loc) {
  Fiber* f = current_fiber(op_name(op), loc);
  f->state = State::WaitBlock;
  f->op = op;
  f->value = unsigned(pred);
  f->loc = loc;
  switch_to_scheduler(f, false);
  return int(f->result);
}

unsigned active_mask() {
  // Without a model of divergence, "active" means "not exited": the full warp while all its threads run.
  Fiber* f = g_run.cur;
  const int w = f->linear / 32;
  unsigned m = 0;
  for (int l = 0; l < 32; ++l)
    if ((existing_lanes(w) >> l & 1u) && g_run.fibers[size_t(w) * 32 + l].state != State::Exited) m |= 1u << l;
  return m;
}

void fail(const char* what, const std::source_location& loc) {
  Fiber* f = current_fiber("fail", loc);
  record_error(std::string(what) + " at " + where(loc) + " in " + thread_name(*f));
  f->state = State::Failed;
  switch_to_scheduler(f, true);
  std::abort();
}

void* shared_storage(const void* key, size_t bytes, size_t align, const std::source_location& loc) {
  current_fiber("a __shared__ variable", loc);
  for (auto& v : g_run.shared)
    if (v.key == key) return v.ptr;
  void* p = nullptr;
  if (posix_memalign(&p, std::max<size_t>(align, sizeof(void*)), bytes) != 0) std::abort();
  std::memset(p, g_cfg.poison, bytes);
  g_run.shared.push_back({key, p, bytes});
  return p;
}

void* dynamic_shared(const std::source_location& loc) {
  current_fiber("extern __shared__", loc);
  return g_run.dyn;
}

long long clock_ticks() { return static_cast<long long>(g_stats.switches); }

void set_func_max_dynamic_smem(const void* kernel, int bytes) { g_func_smem[kernel] = bytes; }

int occupancy_blocks_per_sm(int, size_t) { return g_cfg.blocks_per_sm; }

cudaError_t launch_impl(const void* kernel, dim3 grid, dim3 block, size_t smem, Body body, void* ctx) {
  if (g_thread != nullptr) {
    std::fprintf(stderr, "cuda_emu: kernel launch from device code (dynamic parallelism) is not emulated\n");
    std::abort();
  }
  if (g_fault != cudaSuccess) return g_last_error = g_fault;
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535 ||
      threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64) {
    return g_last_error = cudaErrorInvalidConfiguration;
  }
  auto opt = g_func_smem.find(kernel);
  const size_t max_dyn = opt == g_func_smem.end() ? kDefaultDynamicSmem : size_t(opt->second);
  if (smem > max_dyn) return g_last_error = cudaErrorInvalidValue;

  ++g_stats.launches;
  ensure_fibers(int(threads));
  g_run.nthreads = int(threads);
  g_run.body = body;
  g_run.ctx = ctx;
  g_run.failed = false;
  g_run.error.clear();
  g_run.rng = g_cfg.seed * 0x9E3779B97F4A7C15ULL + g_stats.launches;
  if (g_run.rng == 0) g_run.rng = 1;
  g_run.dyn = std::malloc(smem);  // exactly smem bytes, so that ASan reports any access past them
  g_run.dyn_bytes = smem;
  g_block_dim = uint3{block.x, block.y, block.z};
  g_grid_dim = uint3{grid.x, grid.y, grid.z};
  for (unsigned z = 0; z < grid.z && !g_run.failed; ++z) {
    for (unsigned y = 0; y < grid.y && !g_run.failed; ++y) {
      for (unsigned x = 0; x < grid.x && !g_run.failed; ++x) {
        g_block_idx = uint3{x, y, z};
        for (auto& v : g_run.shared) std::memset(v.ptr, g_cfg.poison, v.bytes);
        if (smem) std::memset(g_run.dyn, g_cfg.poison, smem);
        ++g_stats.blocks;
        if (!run_block(block)) {
          set_fault(cudaErrorLaunchFailure, "block (" + std::to_string(x) + "," + std::to_string(y) + "," +
                                                std::to_string(z) + "): " + g_run.error);
          break;
        }
        size_t static_bytes = 0;
        for (auto& v : g_run.shared) static_bytes += v.bytes;
        if (static_bytes > kStaticSmemLimit || static_bytes + smem > kMaxSmemPerBlock) {
          set_fault(cudaErrorLaunchOutOfResources,
                    "shared memory: " + std::to_string(static_bytes) + " bytes static + " + std::to_string(smem) +
                        " dynamic exceed the limits (48 KiB static, 227 KiB in all)");
          g_run.failed = true;
        }
      }
    }
  }
  free_block_memory();
  g_run.cur = nullptr;
  return cudaSuccess;
}

}  // namespace emu

// ---- host runtime API -----------------------------------------------------------------------------------------
using emu::g_cfg;
using emu::g_stats;

cudaError_t cudaGetDevice(int* dev) {
  if (dev == nullptr) return cudaErrorInvalidValue;
  *dev = g_cfg.device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) {
  if (dev < 0 || dev >= g_cfg.device_count) return cudaErrorInvalidDevice;
  g_cfg.device = dev;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int* n) {
  if (n == nullptr) return cudaErrorInvalidValue;
  *n = g_cfg.device_count;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int dev) {
  if (value == nullptr) return cudaErrorInvalidValue;
  if (dev < 0 || dev >= g_cfg.device_count) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 48 * 1024; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMultiProcessorCount: *value = g_cfg.sms; break;
    case cudaDevAttrL2CacheSize: *value = 50 << 20; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = 2048; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = 233472; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = int(emu::kMaxSmemPerBlock); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int dev) {
  if (prop == nullptr) return cudaErrorInvalidValue;
  if (dev < 0 || dev >= g_cfg.device_count) return cudaErrorInvalidDevice;
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "cuda_emu (CPU)");
  prop->totalGlobalMem = size_t(80) << 30;
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = emu::kMaxSmemPerBlock;
  prop->sharedMemPerMultiprocessor = 233472;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->multiProcessorCount = g_cfg.sms;
  prop->l2CacheSize = 50 << 20;
  prop->major = 9;
  prop->minor = 0;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (p == nullptr) return cudaErrorInvalidValue;
  void* mem = nullptr;
  if (posix_memalign(&mem, 256, bytes ? bytes : 1) != 0) return cudaErrorMemoryAllocation;  // exact size for ASan
  emu::g_allocs[mem] = bytes;
  g_stats.alloc_total += bytes;
  g_stats.alloc_live += bytes;
  ++g_stats.alloc_calls;
  *p = mem;
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaMalloc(p, bytes); }
cudaError_t cudaMallocManaged(void** p, size_t bytes, unsigned) { return cudaMalloc(p, bytes); }
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes); }
cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  auto it = emu::g_allocs.find(p);
  if (it == emu::g_allocs.end()) return cudaErrorInvalidDevicePointer;
  g_stats.alloc_live -= it->second;
  emu::g_allocs.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) { return cudaFree(p); }
cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) return cudaErrorInvalidMemcpyDirection;
  if (bytes && (dst == nullptr || src == nullptr)) return cudaErrorInvalidValue;
  if (bytes) std::memmove(dst, src, bytes);
  return emu::g_fault;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (bytes && p == nullptr) return cudaErrorInvalidValue;
  if (bytes) std::memset(p, value, bytes);
  return emu::g_fault;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) { return cudaMemset(p, value, bytes); }
cudaError_t cudaDeviceSynchronize() { return emu::g_fault; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return emu::g_fault; }
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  static int dummy;
  if (s == nullptr) return cudaErrorInvalidValue;
  *s = reinterpret_cast<cudaStream_t>(&dummy);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::g_last_error != cudaSuccess ? emu::g_last_error : emu::g_fault;
  emu::g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return emu::g_last_error != cudaSuccess ? emu::g_last_error : emu::g_fault; }
const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorOperatingSystem: return "cudaErrorOperatingSystem";
    default: return "cudaError (emulated)";
  }
}
const char* cudaGetErrorString(cudaError_t err) { return cudaGetErrorName(err); }

// ---- controls for the Python side ---------------------------------------------------------------------------
EMU_EXPORT void emu_configure(int device, int sms, int blocks_per_sm) {
  g_cfg.device = device;
  g_cfg.sms = sms;
  g_cfg.blocks_per_sm = blocks_per_sm;
}
EMU_EXPORT void emu_set_seed(unsigned long long seed) { g_cfg.seed = seed; }
EMU_EXPORT void emu_set_poison(int byte) { g_cfg.poison = byte & 0xFF; }
EMU_EXPORT const char* emu_fault_message() { return emu::g_fault_msg.c_str(); }
EMU_EXPORT int emu_fault_code() { return int(emu::g_fault); }
EMU_EXPORT void emu_clear_fault() {
  emu::g_fault = cudaSuccess;
  emu::g_fault_msg.clear();
  emu::g_last_error = cudaSuccess;
}
// Exactly sized allocations outside the allocation statistics, for the host's own buffers: under ASan, a kernel
// reading past them is reported (numpy arrays carry no redzones of their own at the right place).
EMU_EXPORT void* emu_host_alloc(size_t bytes) { return std::malloc(bytes ? bytes : 1); }
EMU_EXPORT void emu_host_free(void* p) { std::free(p); }
EMU_EXPORT unsigned long long emu_stat(int which) {
  switch (which) {
    case 0: return g_stats.launches;
    case 1: return g_stats.blocks;
    case 2: return g_stats.switches;
    case 3: return g_stats.alloc_total;
    case 4: return g_stats.alloc_calls;
    case 5: return g_stats.alloc_live;
    default: return 0;
  }
}
