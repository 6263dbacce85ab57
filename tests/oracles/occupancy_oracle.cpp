// Reference occupancy from NVIDIA's cuda_occupancy.h (header-only; needs no GPU).
// stdin lines:  major minor max_threads_per_sm smem_per_sm smem_optin block regs dyn_smem
// stdout lines: active_blocks limit_regs limit_smem limit_warps limit_blocks   (-1 ... on error)
// The kernel is opted in to the device's largest dynamic shared memory per block, default
// carveout, one block barrier, no static shared memory.
#include <cstdio>
#include "cuda_occupancy.h"
int main() {
  int major, minor, maxThreads, block, regs; long smemSm, smemOptin, smem;
  while (scanf("%d %d %d %ld %ld %d %d %ld", &major, &minor, &maxThreads, &smemSm, &smemOptin, &block, &regs, &smem) == 8) {
    cudaOccDeviceProp p;
    p.computeMajor = major; p.computeMinor = minor; p.maxThreadsPerBlock = 1024; p.warpSize = 32;
    p.regsPerBlock = 65536; p.regsPerMultiprocessor = 65536; p.sharedMemPerBlock = 49152;
    p.reservedSharedMemPerBlock = 1024; p.numSms = 100;
    p.maxThreadsPerMultiprocessor = maxThreads; p.sharedMemPerMultiprocessor = smemSm; p.sharedMemPerBlockOptin = smemOptin;
    cudaOccFuncAttributes a; a.maxThreadsPerBlock = 1024; a.numRegs = regs; a.sharedSizeBytes = 0;
    a.partitionedGCConfig = PARTITIONED_GC_OFF; a.shmemLimitConfig = FUNC_SHMEM_LIMIT_OPTIN;
    a.maxDynamicSharedSizeBytes = p.sharedMemPerBlockOptin; a.numBlockBarriers = 1;
    cudaOccDeviceState s; cudaOccResult r;
    cudaOccError e = cudaOccMaxActiveBlocksPerMultiprocessor(&r, &p, &a, &s, block, (size_t)smem);
    if (e != CUDA_OCC_SUCCESS) { printf("-1 -1 -1 -1 -1\n"); continue; }
    printf("%d %d %d %d %d\n", r.activeBlocksPerMultiprocessor, r.blockLimitRegs, r.blockLimitSharedMem,
           r.blockLimitWarps, r.blockLimitBlocks);
  }
}
