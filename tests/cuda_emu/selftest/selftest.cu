// Kernels that pin down the emulator's semantics (tests/test_fuse_emulated.py compares them with numpy) and
// kernels with real CUDA bugs the emulator must report as faults instead of hanging or passing.
#include <cuda_runtime.h>

extern __shared__ int g_dyn[];  // namespace-scope dynamic shared memory

constexpr unsigned kAll = 0xffffffffu;

template <int W>
__global__ void intrinsics(unsigned long long* out) {
  const int t = threadIdx.x, n = blockDim.x, lane = t & 31;
  const int v = t * 10;
  __shared__ int rev[256];
  rev[t] = v;
  out[0 * n + t] = __shfl_sync(kAll, v, 3, W);
  out[1 * n + t] = __shfl_up_sync(kAll, v, 1, W);
  out[2 * n + t] = __shfl_down_sync(kAll, v, 2, W);
  out[3 * n + t] = __shfl_xor_sync(kAll, v, 5, W);
  out[4 * n + t] = __ballot_sync(kAll, lane % 3 == 0);
  out[5 * n + t] = __reduce_add_sync(kAll, static_cast<unsigned>(lane));
  out[6 * n + t] = __match_any_sync(kAll, lane / 4);
  out[7 * n + t] = __syncthreads_count(t % 5 == 0);
  g_dyn[t] = v;
  __syncthreads();
  out[8 * n + t] = g_dyn[n - 1 - t] + rev[(t + 1) % n];
  out[9 * n + t] = __any_sync(kAll, t == 37) + 2 * __all_sync(kAll, t != 5);
  int m = 0;
  atomicMax(&g_dyn[0], v);
  __syncthreads();
  m = g_dyn[0];
  out[10 * n + t] = m;
}

__global__ void warp_op_after_lanes_exit() {
  if (threadIdx.x >= 16) return;
  __syncwarp();
}

__global__ void divergent_barriers() {
  if (threadIdx.x < 32) {
    __syncthreads();
  } else {
    __syncthreads();
  }
}

__global__ void barrier_after_exit() {
  if (threadIdx.x == 0) return;
  __syncthreads();
}

__global__ void lane_outside_mask() { __shfl_sync(0x0000ffffu, 1, 0); }

extern "C" int emu_selftest_intrinsics(int width, unsigned long long* out, int threads) {
  if (width == 32) {
    intrinsics<32><<<1, threads, threads * sizeof(int)>>>(out);
  } else {
    intrinsics<4><<<dim3(1), dim3(threads), threads * sizeof(int), 0>>>(out);
  }
  return cudaDeviceSynchronize();
}

extern "C" int emu_selftest_bug(int which) {
  switch (which) {
    case 0: warp_op_after_lanes_exit<<<1, 64>>>(); break;
    case 1: divergent_barriers<<<1, 64>>>(); break;
    case 2: barrier_after_exit<<<1, 64>>>(); break;
    case 3: lane_outside_mask<<<1, 32>>>(); break;
    default: return -1;
  }
  return cudaDeviceSynchronize();
}
