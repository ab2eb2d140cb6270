// The epoch's writer side when membarrier fails after a successful registration (parking.hpp: readers then
// have only a compiler fence): try_advance() must not advance, or a reader whose announcement the scan
// missed could still hold what the advance lets a writer free. A kernel fails the call with ENOMEM when
// it cannot allocate its cpumask; here a seccomp filter in a forked child makes it fail that way. Its own
// executable: the fork happens with no other thread running.
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <thread>

#include "rill/detail/epoch.hpp"
#include "rill/detail/parking.hpp"

namespace {

namespace epoch = rill::detail::epoch;

// Child exit codes.
constexpr int kAdvancedNothing = 0;
constexpr int kNoFilter = 2;        // seccomp unavailable here: nothing tested
constexpr int kBarrierWorked = 3;   // the filter did not make membarrier fail: nothing tested
constexpr int kAdvancedAnyway = 4;  // the defect

// Makes membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) fail with ENOMEM for this process from now on.
bool fail_membarrier() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOMEM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

int child() {
  if (!fail_membarrier()) return kNoFilter;
  // A second thread: with one, the kernel returns from membarrier early without failing.
  std::atomic<bool> stop{false};  // relaxed: a stop flag; nothing else travels through it
  std::thread other([&] {
    while (!stop.load(std::memory_order_relaxed)) std::this_thread::yield();
  });
  int result = kAdvancedNothing;
  if (rill::detail::heavy_barrier()) {
    result = kBarrierWorked;
  } else {
    const std::uint64_t before = epoch::g_epoch.load(std::memory_order_acquire);  // single writer: this one
    const bool advanced = epoch::try_advance() || epoch::try_advance();
    if (advanced || epoch::g_epoch.load(std::memory_order_acquire) != before) result = kAdvancedAnyway;
  }
  stop.store(true, std::memory_order_relaxed);
  other.join();
  return result;
}

TEST(Epoch, NoAdvanceWhileMembarrierFails) {
  { epoch::guard registers_this_thread; }  // decides the barrier (registers membarrier) and claims a slot
  // Relaxed: decided by the guard above on this thread.
  if (!rill::detail::g_asymmetric_barrier.load(std::memory_order_relaxed)) {
    GTEST_SKIP() << "membarrier is not registered (no kernel support, or a sanitizer build): readers "
                    "use full fences and the writer's barrier cannot fail this way";
  }
  ASSERT_TRUE(epoch::try_advance()) << "with a working barrier and no reader inside, the epoch advances";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(child());
  int wait_status = 0;
  ASSERT_EQ(::waitpid(pid, &wait_status, 0), pid);
  ASSERT_TRUE(WIFEXITED(wait_status));
  const int code = WEXITSTATUS(wait_status);
  if (code == kNoFilter) GTEST_SKIP() << "seccomp filters are not available here";
  if (code == kBarrierWorked) GTEST_SKIP() << "the filter did not make membarrier fail here";
  EXPECT_EQ(code, kAdvancedNothing) << "the epoch advanced although membarrier failed";
}

}  // namespace
