// Fake <cuda_runtime.h> for the CPU emulator (tests/cuda_emu): enough of the CUDA language and runtime API for
// a kernel file, after build.py's source transform, to compile with g++ and run on the CPU.
//
// Threads of a block are cooperative fibers on one OS thread; they switch only at barriers and warp
// intrinsics, so code between two sync points runs without interruption (atomics are plain read-modify-write).
// Device memory is host memory. See README.md for what is and is not emulated.
#pragma once

#include <atomic>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- qualifiers -------------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __CUDACC__EMULATED 1
// __restrict__ is a g++ keyword already. __shared__ is rewritten by build.py (per-block storage); a leftover
// one is a transform bug, so it is deliberately left undefined and fails to compile.

// ---- vector types -----------------------------------------------------------------------------------------
struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return {x, y, z}; }
};

#define EMU_VEC2(name, T, al)                                                              \
  struct alignas(al) name { T x, y; };                                                     \
  inline name make_##name(T x, T y) { return name{x, y}; }
#define EMU_VEC4(name, T, al)                                                              \
  struct alignas(al) name { T x, y, z, w; };                                               \
  inline name make_##name(T x, T y, T z, T w) { return name{x, y, z, w}; }
EMU_VEC2(float2, float, 8)
EMU_VEC4(float4, float, 16)
EMU_VEC2(int2, int, 8)
EMU_VEC4(int4, int, 16)
EMU_VEC2(uint2, unsigned, 8)
EMU_VEC4(uint4, unsigned, 16)
EMU_VEC2(double2, double, 16)
EMU_VEC2(longlong2, long long, 16)
EMU_VEC2(ulonglong2, unsigned long long, 16)
#undef EMU_VEC2
#undef EMU_VEC4
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

// ---- runtime types ----------------------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorOperatingSystem = 304,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorAssert = 710,
  cudaErrorIllegalInstruction = 715,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
  cudaErrorUnknown = 999,
};
typedef cudaError_t cudaError;

struct CUstream_st;
typedef CUstream_st* cudaStream_t;
struct CUevent_st;
typedef CUevent_st* cudaEvent_t;
#define cudaStreamDefault 0x0
#define cudaStreamNonBlocking 0x1
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrL2CacheSize = 38,
  cudaDevAttrMaxThreadsPerMultiProcessor = 39,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;
  size_t sharedMemPerMultiprocessor;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsPerMultiProcessor;
  int multiProcessorCount;
  int l2CacheSize;
  int major;
  int minor;
};

// ---- the emulator's interface (implemented in emu.cpp) ----------------------------------------------------
namespace emu {

constexpr unsigned kFullMask = 0xffffffffu;

enum class Op : unsigned char {
  None, SyncThreads, SyncOr, SyncAnd, SyncCount,  // block barriers
  SyncWarp, ShflIdx, ShflUp, ShflDown, ShflXor, Ballot, Any, All, MatchAny,
  ReduceAddU, ReduceAddI, ReduceMinU, ReduceMinI, ReduceMaxU, ReduceMaxI, ReduceAnd, ReduceOr, ReduceXor,
};

struct ThreadState {  // the running emulated thread; the index macros below read it
  uint3 thread_idx;
  int lane;
};

extern ThreadState* g_thread;  // null outside a kernel
extern uint3 g_block_idx, g_block_dim, g_grid_dim;

// Suspend the calling thread at a sync point until its peers arrive; returns the op's result for this lane.
unsigned long long warp_op(Op op, unsigned mask, unsigned long long value, int arg, int width,
                           const std::source_location& loc);
int block_barrier(Op op, int pred, const std::source_location& loc);
unsigned active_mask();
[[noreturn]] void fail(const char* what, const std::source_location& loc);
void* shared_storage(const void* key, size_t bytes, size_t align, const std::source_location& loc);
void* dynamic_shared(const std::source_location& loc);
long long clock_ticks();

using Body = void (*)(void*);
cudaError_t launch_impl(const void* kernel, dim3 grid, dim3 block, size_t smem, Body body, void* ctx);
void set_func_max_dynamic_smem(const void* kernel, int bytes);
int occupancy_blocks_per_sm(int block_size, size_t smem);

template <class T>
T& block_shared(const void* key, size_t align, const std::source_location& loc = std::source_location::current()) {
  return *static_cast<T*>(shared_storage(key, sizeof(T), align, loc));
}

template <class T>
T* dynamic_shared_as(const std::source_location& loc = std::source_location::current()) {
  return static_cast<T*>(dynamic_shared(loc));
}

// name<<<grid, block, smem, stream>>>(args...) becomes launch(name, grid, block, smem, stream, args...):
// the arguments are converted to the kernel's parameter types once, as a CUDA launch does, and every
// emulated thread calls the kernel with its own copies.
template <class... P, class... A>
cudaError_t launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  struct Ctx {
    void (*kernel)(P...);
    std::tuple<std::decay_t<P>...> params;
  } ctx{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
  Body body = [](void* p) {
    Ctx* c = static_cast<Ctx*>(p);
    std::tuple<std::decay_t<P>...> mine = c->params;
    std::apply(c->kernel, mine);
  };
  return launch_impl(reinterpret_cast<const void*>(kernel), grid, block, smem, body, &ctx);
}

template <class T>
unsigned long long to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp shuffles move at most 8 bytes");
  unsigned long long u = 0;
  std::memcpy(&u, &v, sizeof(T));
  return u;
}

template <class T>
T from_bits(unsigned long long u) {
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}

}  // namespace emu

// ---- built-in variables -----------------------------------------------------------------------------------
#define threadIdx (::emu::g_thread->thread_idx)
#define blockIdx (::emu::g_block_idx)
#define blockDim (::emu::g_block_dim)
#define gridDim (::emu::g_grid_dim)
constexpr int warpSize = 32;

// ---- synchronisation and warp intrinsics ------------------------------------------------------------------
using emu_loc = std::source_location;
#define EMU_HERE const emu_loc& loc = emu_loc::current()

inline void __syncthreads(EMU_HERE) { ::emu::block_barrier(::emu::Op::SyncThreads, 0, loc); }
inline int __syncthreads_or(int p, EMU_HERE) { return ::emu::block_barrier(::emu::Op::SyncOr, p != 0, loc); }
inline int __syncthreads_and(int p, EMU_HERE) { return ::emu::block_barrier(::emu::Op::SyncAnd, p != 0, loc); }
inline int __syncthreads_count(int p, EMU_HERE) { return ::emu::block_barrier(::emu::Op::SyncCount, p != 0, loc); }
inline void __syncwarp(unsigned mask = ::emu::kFullMask, EMU_HERE) {
  ::emu::warp_op(::emu::Op::SyncWarp, mask, 0, 0, 32, loc);
}

template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32, EMU_HERE) {
  return ::emu::from_bits<T>(::emu::warp_op(::emu::Op::ShflIdx, mask, ::emu::to_bits(v), src, width, loc));
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, EMU_HERE) {
  return ::emu::from_bits<T>(::emu::warp_op(::emu::Op::ShflUp, mask, ::emu::to_bits(v), int(delta), width, loc));
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, EMU_HERE) {
  return ::emu::from_bits<T>(::emu::warp_op(::emu::Op::ShflDown, mask, ::emu::to_bits(v), int(delta), width, loc));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, EMU_HERE) {
  return ::emu::from_bits<T>(::emu::warp_op(::emu::Op::ShflXor, mask, ::emu::to_bits(v), lane_mask, width, loc));
}
inline unsigned __ballot_sync(unsigned mask, int p, EMU_HERE) {
  return unsigned(::emu::warp_op(::emu::Op::Ballot, mask, p != 0, 0, 32, loc));
}
inline int __any_sync(unsigned mask, int p, EMU_HERE) { return int(::emu::warp_op(::emu::Op::Any, mask, p != 0, 0, 32, loc)); }
inline int __all_sync(unsigned mask, int p, EMU_HERE) { return int(::emu::warp_op(::emu::Op::All, mask, p != 0, 0, 32, loc)); }
template <class T>
unsigned __match_any_sync(unsigned mask, T v, EMU_HERE) {
  return unsigned(::emu::warp_op(::emu::Op::MatchAny, mask, ::emu::to_bits(v), 0, 32, loc));
}
inline unsigned __activemask() { return ::emu::active_mask(); }

#define EMU_REDUCE(name, T, op)                                                                   \
  inline T name(unsigned mask, T v, EMU_HERE) {                                                   \
    return T(::emu::warp_op(::emu::Op::op, mask, (unsigned long long)(unsigned)v, 0, 32, loc)); \
  }
EMU_REDUCE(__reduce_add_sync, unsigned, ReduceAddU)
EMU_REDUCE(__reduce_add_sync, int, ReduceAddI)
EMU_REDUCE(__reduce_min_sync, unsigned, ReduceMinU)
EMU_REDUCE(__reduce_min_sync, int, ReduceMinI)
EMU_REDUCE(__reduce_max_sync, unsigned, ReduceMaxU)
EMU_REDUCE(__reduce_max_sync, int, ReduceMaxI)
EMU_REDUCE(__reduce_and_sync, unsigned, ReduceAnd)
EMU_REDUCE(__reduce_or_sync, unsigned, ReduceOr)
EMU_REDUCE(__reduce_xor_sync, unsigned, ReduceXor)
#undef EMU_REDUCE

inline void __threadfence() { std::atomic_signal_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_signal_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_signal_fence(std::memory_order_seq_cst); }
[[noreturn]] inline void __trap(EMU_HERE) { ::emu::fail("__trap() called", loc); }
inline void __nanosleep(unsigned) {}
inline long long clock64() { return ::emu::clock_ticks(); }

// ---- atomics: plain read-modify-write (threads switch only at sync points) --------------------------------
template <class T>
T atomicAdd(T* p, T v) { T old = *p; *p = old + v; return old; }
template <class T>
T atomicSub(T* p, T v) { T old = *p; *p = old - v; return old; }
template <class T>
T atomicExch(T* p, T v) { T old = *p; *p = v; return old; }
template <class T>
T atomicMin(T* p, T v) { T old = *p; *p = v < old ? v : old; return old; }
template <class T>
T atomicMax(T* p, T v) { T old = *p; *p = v > old ? v : old; return old; }
template <class T>
T atomicAnd(T* p, T v) { T old = *p; *p = old & v; return old; }
template <class T>
T atomicOr(T* p, T v) { T old = *p; *p = old | v; return old; }
template <class T>
T atomicXor(T* p, T v) { T old = *p; *p = old ^ v; return old; }
template <class T>
T atomicCAS(T* p, T cmp, T v) { T old = *p; if (old == cmp) *p = v; return old; }
inline unsigned atomicInc(unsigned* p, unsigned lim) { unsigned o = *p; *p = o >= lim ? 0 : o + 1; return o; }
inline unsigned atomicDec(unsigned* p, unsigned lim) { unsigned o = *p; *p = (o == 0 || o > lim) ? lim : o - 1; return o; }
#define atomicAdd_block atomicAdd
#define atomicMax_block atomicMax
#define atomicMin_block atomicMin
#define atomicOr_block atomicOr
#define atomicCAS_block atomicCAS

// ---- loads and stores with cache hints: plain accesses ----------------------------------------------------
template <class T> T __ldg(const T* p) { return *p; }
template <class T> T __ldcg(const T* p) { return *p; }
template <class T> T __ldca(const T* p) { return *p; }
template <class T> T __ldcs(const T* p) { return *p; }
template <class T> T __ldlu(const T* p) { return *p; }
template <class T> T __ldcv(const T* p) { return *p; }
template <class T> void __stwb(T* p, T v) { *p = v; }
template <class T> void __stcg(T* p, T v) { *p = v; }
template <class T> void __stcs(T* p, T v) { *p = v; }
template <class T> void __stwt(T* p, T v) { *p = v; }

// ---- integer and bit intrinsics ---------------------------------------------------------------------------
inline unsigned __float_as_uint(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline int __float_as_int(float x) { int u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }
inline float __int_as_float(int u) { float x; std::memcpy(&x, &u, 4); return x; }
inline long long __double_as_longlong(double x) { long long u; std::memcpy(&u, &x, 8); return u; }
inline double __longlong_as_double(long long u) { double x; std::memcpy(&x, &u, 8); return x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned long long __brevll(unsigned long long x) {
  return ((unsigned long long)__brev(unsigned(x)) << 32) | __brev(unsigned(x >> 32));
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
  s &= 31;
  return s ? (hi << s) | (lo >> (32 - s)) : hi;
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
  s &= 31;
  return s ? (lo >> s) | (hi << (32 - s)) : lo;
}
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __umul24(unsigned a, unsigned b) { return a * b; }
inline int __mulhi(int a, int b) { return int(((long long)a * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned(((unsigned long long)a * b) >> 32); }

// min/max as CUDA's math headers provide them for host and device: mixed integer types promote as usual.
template <class A, class B>
  requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return C(b) < C(a) ? C(b) : C(a);
}
template <class A, class B>
  requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return C(a) < C(b) ? C(b) : C(a);
}
inline unsigned umin(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned umax(unsigned a, unsigned b) { return a < b ? b : a; }
inline long long llmin(long long a, long long b) { return a < b ? a : b; }
inline long long llmax(long long a, long long b) { return a < b ? b : a; }

// ---- float intrinsics: the exact libm function stands in for the fast approximate one ---------------------
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline int __float2int_rn(float x) { return int(nearbyintf(x)); }
inline int __float2int_rz(float x) { return int(x); }
inline int __float2int_rd(float x) { return int(floorf(x)); }
inline int __float2int_ru(float x) { return int(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return unsigned(nearbyintf(x)); }
inline float __int2float_rn(int x) { return float(x); }
inline float __uint2float_rn(unsigned x) { return float(x); }

// ---- runtime API ------------------------------------------------------------------------------------------
extern "C++" {
cudaError_t cudaGetDevice(int* dev);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int dev);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaMallocManaged(void** p, size_t bytes, unsigned flags = 1);
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t stream);
cudaError_t cudaFree(void* p);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaFreeAsync(void* p, cudaStream_t stream);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = 0);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream = 0);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);
const char* cudaGetErrorName(cudaError_t err);
}

template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(p), bytes); }
template <class T>
cudaError_t cudaMallocAsync(T** p, size_t bytes, cudaStream_t s) {
  return cudaMallocAsync(reinterpret_cast<void**>(p), bytes, s);
}
template <class T>
cudaError_t cudaMallocHost(T** p, size_t bytes) { return cudaMallocHost(reinterpret_cast<void**>(p), bytes); }

template <class F>
cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > 232448) return cudaErrorInvalidValue;
    ::emu::set_func_max_dynamic_smem(reinterpret_cast<const void*>(kernel), value);
  }
  return cudaSuccess;
}

template <class F>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, F* kernel, int block_size, size_t smem) {
  (void)kernel;
  if (n == nullptr || block_size <= 0 || block_size > 1024) return cudaErrorInvalidValue;
  *n = ::emu::occupancy_blocks_per_sm(block_size, smem);
  return cudaSuccess;
}
template <class F>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int* n, F* kernel, int block_size, size_t smem,
                                                                   unsigned) {
  return cudaOccupancyMaxActiveBlocksPerMultiprocessor(n, kernel, block_size, smem);
}
