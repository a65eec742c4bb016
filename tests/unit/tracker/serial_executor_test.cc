#include "tracker-service/serial_executor.h"

#include <pthread.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace qfp::tracker {
namespace {

// Tasks from several threads run one at a time, each thread's in the order
// it added them, all on the executor's own named thread; the destructor
// runs every task added before it.
TEST(SerialExecutorTest, RunsEveryTaskInOrderOnItsThread) {
  absl::Mutex mu;
  std::vector<std::vector<int>> seen(4);
  std::vector<std::string> names;
  {
    SerialExecutor executor("qfp-test-exec");
    std::vector<std::thread> adders;
    for (int t = 0; t < 4; ++t) {
      adders.emplace_back([&, t] {
        for (int i = 0; i < 2500; ++i) {
          executor.Add([&, t, i] {
            char name[16] = {};
            pthread_getname_np(pthread_self(), name, sizeof(name));
            absl::MutexLock lock(&mu);
            seen[t].push_back(i);
            if (names.empty() || names.back() != name) names.push_back(name);
          });
        }
      });
    }
    for (std::thread& adder : adders) adder.join();
  }  // destroyed: everything added has run
  for (int t = 0; t < 4; ++t) {
    ASSERT_EQ(seen[t].size(), 2500u) << "thread " << t;
    for (int i = 0; i < 2500; ++i) ASSERT_EQ(seen[t][i], i);
  }
  EXPECT_EQ(names, std::vector<std::string>{"qfp-test-exec"});
}

}  // namespace
}  // namespace qfp::tracker
