#include "tracker-service/recent_failures.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace qfp::tracker {
namespace {

using failedpolls::v1::FailureId;

FailureId Id(const std::string& poller, const std::string& instance,
             uint64_t sequence) {
  FailureId id;
  id.set_poller_id(poller);
  id.set_instance_id(instance);
  id.set_sequence(sequence);
  return id;
}

FailureId Seq(uint64_t sequence) { return Id("poller", "inst", sequence); }

RecentFailures::Options Limits(size_t max_instances,
                               size_t max_runs_per_instance, size_t max_runs) {
  RecentFailures::Options options;
  options.max_instances = max_instances;
  options.max_runs_per_instance = max_runs_per_instance;
  options.max_runs = max_runs;
  return options;
}

RecentFailures::Options Defaults() { return RecentFailures::Options(); }

TEST(RecentFailuresTest, InOrderAcceptanceMakesEveryResendADuplicate) {
  RecentFailures recent(Defaults());
  for (uint64_t s = 1; s <= 1000; ++s) {
    EXPECT_FALSE(recent.Contains(Seq(s)));
    EXPECT_TRUE(recent.Insert(Seq(s)));
  }
  for (uint64_t s = 1; s <= 1000; ++s) {
    EXPECT_TRUE(recent.Contains(Seq(s))) << s;
    EXPECT_FALSE(recent.Insert(Seq(s))) << s;  // already remembered
  }
  EXPECT_FALSE(recent.Contains(Seq(1001)));
  EXPECT_FALSE(recent.Contains(Seq(0)));
  EXPECT_EQ(recent.runs(), 1u);  // the high-water mark: [1, 1000]
  EXPECT_EQ(recent.instances(), 1u);
}

struct OrderCase {
  const char* name;
  std::vector<uint64_t> inserted;  // in this order
  size_t runs;                     // expected afterwards
};

TEST(RecentFailuresTest, AcceptanceOrdersTable) {
  const std::vector<OrderCase> cases = {
      {"in order", {1, 2, 3, 4, 5}, 1},
      {"reverse order", {5, 4, 3, 2, 1}, 1},
      {"refused 3 resent after 5", {1, 2, 4, 5, 3}, 1},
      {"second batch in flight landed first",
       {6, 7, 8, 9, 10, 1, 2, 3, 4, 5},
       1},
      {"interleaved batches", {1, 4, 2, 5, 3, 6}, 1},
      {"producer gaps never arrive", {1, 3, 5, 7, 9}, 5},
      {"gap in the middle stays open", {1, 2, 3, 7, 8, 9}, 2},
      {"two runs joined by their one gap", {1, 2, 6, 7, 4, 3, 5}, 1},
      {"met mid-stream (tracker restart, spool resend)",
       {5000, 5001, 5002, 5003},
       1},
      {"restarted poller resends its spool out of order",
       {40, 41, 42, 44, 43, 45, 38, 39},
       1},
      {"repeats", {1, 1, 2, 2, 2, 3}, 1},
  };
  for (const OrderCase& c : cases) {
    SCOPED_TRACE(c.name);
    RecentFailures recent(Defaults());
    std::set<uint64_t> oracle;
    for (uint64_t s : c.inserted) {
      EXPECT_EQ(recent.Insert(Seq(s)), oracle.insert(s).second) << s;
    }
    const uint64_t top =
        *std::max_element(c.inserted.begin(), c.inserted.end());
    for (uint64_t s = 0; s <= top + 2; ++s) {
      EXPECT_EQ(recent.Contains(Seq(s)), oracle.count(s) == 1) << s;
    }
    EXPECT_EQ(recent.runs(), c.runs);
  }
}

TEST(RecentFailuresTest, RefusedSequenceBelowTheMarkIsNotADuplicate) {
  RecentFailures recent(Defaults());
  // 11 was refused (buffer full): the producer keeps it, the tracker never
  // inserts it, and later ones are accepted.
  for (uint64_t s = 1; s <= 20; ++s) {
    if (s != 11) recent.Insert(Seq(s));
  }
  EXPECT_FALSE(recent.Contains(Seq(11)));  // resent: must be written
  EXPECT_TRUE(recent.Contains(Seq(10)));
  EXPECT_TRUE(recent.Contains(Seq(12)));
  EXPECT_EQ(recent.runs(), 2u);
  // Its resend is accepted: the gap closes.
  EXPECT_TRUE(recent.Insert(Seq(11)));
  EXPECT_TRUE(recent.Contains(Seq(11)));
  EXPECT_EQ(recent.runs(), 1u);
}

TEST(RecentFailuresTest, ExtremeSequencesDoNotOverflow) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  RecentFailures recent(Defaults());
  EXPECT_TRUE(recent.Insert(Seq(kMax)));
  EXPECT_TRUE(recent.Insert(Seq(0)));
  EXPECT_EQ(recent.runs(), 2u);
  EXPECT_FALSE(recent.Contains(Seq(kMax - 1)));
  EXPECT_FALSE(recent.Contains(Seq(1)));
  EXPECT_TRUE(recent.Insert(Seq(kMax - 1)));
  EXPECT_TRUE(recent.Insert(Seq(1)));
  EXPECT_EQ(recent.runs(), 2u);
  EXPECT_TRUE(recent.Contains(Seq(kMax)));
  EXPECT_TRUE(recent.Contains(Seq(kMax - 1)));
  EXPECT_TRUE(recent.Contains(Seq(0)));
  EXPECT_TRUE(recent.Contains(Seq(1)));
  EXPECT_FALSE(recent.Contains(Seq(2)));
  EXPECT_FALSE(recent.Contains(Seq(kMax - 2)));
}

TEST(RecentFailuresTest, PerInstanceCapForgetsTheLowestRunNeverFillsAGap) {
  RecentFailures recent(Limits(10, 2, 100));
  for (uint64_t s = 1; s <= 10; ++s) recent.Insert(Seq(s));
  recent.Insert(Seq(12));  // 11 refused
  EXPECT_EQ(recent.runs(), 2u);
  recent.Insert(Seq(14));  // 13 refused; three runs: [1, 10] is forgotten
  EXPECT_EQ(recent.runs(), 2u);
  EXPECT_EQ(recent.stats().forgotten_runs, 1u);
  // Forgotten: a resend would be written twice (harmless).
  EXPECT_FALSE(recent.Contains(Seq(1)));
  EXPECT_FALSE(recent.Contains(Seq(10)));
  // The refused ones are still not seen: the mark did not jump over them.
  EXPECT_FALSE(recent.Contains(Seq(11)));
  EXPECT_FALSE(recent.Contains(Seq(13)));
  EXPECT_TRUE(recent.Contains(Seq(12)));
  EXPECT_TRUE(recent.Contains(Seq(14)));
  // The resend of 11 is accepted; it joins [12] and nothing is forgotten.
  EXPECT_TRUE(recent.Insert(Seq(11)));
  EXPECT_TRUE(recent.Contains(Seq(11)));
  EXPECT_EQ(recent.runs(), 2u);
  EXPECT_EQ(recent.stats().forgotten_runs, 1u);
}

TEST(RecentFailuresTest, NewLowestRunOverTheCapIsItselfForgotten) {
  RecentFailures recent(Limits(10, 2, 100));
  recent.Insert(Seq(10));
  recent.Insert(Seq(20));
  EXPECT_TRUE(recent.Insert(Seq(5)));  // was not seen; forgotten at once
  EXPECT_FALSE(recent.Contains(Seq(5)));
  EXPECT_TRUE(recent.Contains(Seq(10)));
  EXPECT_TRUE(recent.Contains(Seq(20)));
  EXPECT_EQ(recent.runs(), 2u);
}

TEST(RecentFailuresTest, InstancesAreEvictedLeastRecentlyInsertedFirst) {
  RecentFailures recent(Limits(3, 100, 1000));
  recent.Insert(Id("a", "1", 1));
  recent.Insert(Id("b", "1", 1));
  recent.Insert(Id("c", "1", 1));
  recent.Insert(Id("a", "1", 2));                 // a becomes the most recent
  EXPECT_TRUE(recent.Contains(Id("b", "1", 1)));  // does not refresh b
  recent.Insert(Id("d", "1", 1));                 // evicts b
  EXPECT_EQ(recent.instances(), 3u);
  EXPECT_EQ(recent.stats().evicted_instances, 1u);
  EXPECT_FALSE(recent.Contains(Id("b", "1", 1)));
  EXPECT_TRUE(recent.Contains(Id("a", "1", 2)));
  EXPECT_TRUE(recent.Contains(Id("c", "1", 1)));
  EXPECT_TRUE(recent.Contains(Id("d", "1", 1)));
  // Least recent first: c, a, d (the Contains refreshed nothing).
  recent.Insert(Id("e", "1", 1));  // evicts c
  EXPECT_FALSE(recent.Contains(Id("c", "1", 1)));
  EXPECT_TRUE(recent.Contains(Id("a", "1", 1)));
  // An evicted instance comes back empty: resends are written again.
  EXPECT_TRUE(recent.Insert(Id("b", "1", 1)));
  EXPECT_EQ(recent.instances(), 3u);
}

TEST(RecentFailuresTest, TotalRunsCapEvictsLeastRecentInstances) {
  RecentFailures recent(Limits(100, 4, 6));
  for (uint64_t s : {1, 3, 5}) recent.Insert(Id("a", "1", s));
  for (uint64_t s : {1, 3, 5}) recent.Insert(Id("b", "1", s));
  EXPECT_EQ(recent.runs(), 6u);
  recent.Insert(Id("c", "1", 1));  // 7 runs: a goes
  EXPECT_EQ(recent.runs(), 4u);
  EXPECT_EQ(recent.instances(), 2u);
  EXPECT_FALSE(recent.Contains(Id("a", "1", 1)));
  EXPECT_TRUE(recent.Contains(Id("b", "1", 5)));
  EXPECT_TRUE(recent.Contains(Id("c", "1", 1)));
  // The per-instance cap never exceeds the total cap.
  RecentFailures tiny(Limits(100, 50, 3));
  for (uint64_t s = 1; s <= 20; s += 2) tiny.Insert(Seq(s));
  EXPECT_EQ(tiny.runs(), 3u);
  EXPECT_TRUE(tiny.Contains(Seq(19)));
}

TEST(RecentFailuresTest, InstancesAreKeyedByBothIdsAsAPair) {
  RecentFailures recent(Defaults());
  recent.Insert(Id("poller1", "same", 7));
  EXPECT_TRUE(recent.Contains(Id("poller1", "same", 7)));
  EXPECT_FALSE(recent.Contains(Id("poller2", "same", 7)));
  EXPECT_FALSE(recent.Contains(Id("poller1", "other", 7)));
  // Joined with a separator these two would be the same key.
  recent.Insert(Id("a/b", "c", 1));
  EXPECT_FALSE(recent.Contains(Id("a", "b/c", 1)));
  EXPECT_FALSE(recent.Contains(Id("a/b/c", "", 1)));
  recent.Insert(Id("p", "", 3));  // an empty instance id is an instance too
  EXPECT_TRUE(recent.Contains(Id("p", "", 3)));
  EXPECT_FALSE(recent.Contains(Id("", "p", 3)));
  EXPECT_EQ(recent.instances(), 3u);
}

TEST(RecentFailuresTest, DedupeWindowZeroTurnsItOff) {
  RecentFailures recent(RecentFailures::OptionsForDedupeWindow(0));
  EXPECT_FALSE(recent.enabled());
  EXPECT_FALSE(recent.Insert(Seq(1)));
  EXPECT_FALSE(recent.Contains(Seq(1)));
  EXPECT_EQ(recent.runs(), 0u);
  EXPECT_EQ(recent.instances(), 0u);
}

TEST(RecentFailuresTest, DedupeWindowMapsToTheLimits) {
  struct Mapping {
    size_t window, instances, per_instance, runs;
  };
  for (const Mapping& m :
       std::vector<Mapping>{{1000000, 65536, 4096, 1000000},
                            {100000000, 65536, 4096, 100000000},
                            {5000, 5000, 4096, 5000},
                            {100, 100, 100, 100},
                            {1, 1, 1, 1}}) {
    SCOPED_TRACE(m.window);
    RecentFailures::Options options =
        RecentFailures::OptionsForDedupeWindow(m.window);
    EXPECT_EQ(options.max_instances, m.instances);
    EXPECT_EQ(options.max_runs_per_instance, m.per_instance);
    EXPECT_EQ(options.max_runs, m.runs);
    EXPECT_TRUE(RecentFailures(options).enabled());
  }
  // dedupeWindow 1 still never reports an unseen id as seen.
  RecentFailures one(RecentFailures::OptionsForDedupeWindow(1));
  one.Insert(Seq(1));
  one.Insert(Seq(2));
  one.Insert(Seq(5));  // [1, 2] forgotten
  EXPECT_FALSE(one.Contains(Seq(1)));
  EXPECT_FALSE(one.Contains(Seq(3)));
  EXPECT_TRUE(one.Contains(Seq(5)));
  one.Insert(Id("other", "x", 1));  // the first instance goes
  EXPECT_FALSE(one.Contains(Seq(5)));
  EXPECT_EQ(one.runs(), 1u);
}

// Random insertions and probes against an exact std::set per instance: the
// filter may say "not seen" for a seen id (after forgetting), never "seen"
// for an unseen one; with nothing forgotten it answers exactly.
TEST(RecentFailuresTest, NeverSeenForAnUnseenIdAgainstAnExactOracle) {
  struct Config {
    const char* name;
    RecentFailures::Options options;
  };
  const std::vector<Config> configs = {
      {"tiny", Limits(2, 3, 5)},
      {"small", Limits(4, 8, 20)},
      {"roomy", Limits(64, 4096, 1000000)},
  };
  const std::vector<std::pair<std::string, std::string>> instances = {
      {"p1", "i1"}, {"p1", "i2"}, {"p2", "i1"}, {"p2", "i2"}, {"p3", ""}};
  for (const Config& config : configs) {
    for (uint32_t seed = 1; seed <= 20; ++seed) {
      SCOPED_TRACE(testing::Message() << config.name << " seed " << seed);
      std::mt19937_64 rng(seed);
      RecentFailures recent(config.options);
      std::map<std::pair<std::string, std::string>, std::set<uint64_t>> oracle;
      std::map<size_t, uint64_t> next;  // a mostly ascending producer each
      uint64_t false_negatives = 0;
      for (int step = 0; step < 4000; ++step) {
        const size_t i = rng() % instances.size();
        const auto& [poller, instance] = instances[i];
        uint64_t s = 0;
        switch (rng() % 4) {
          case 0:  // anywhere, to make gaps and resends
            s = 1 + rng() % 300;
            break;
          default:  // the producer's next one, sometimes skipping ahead
            s = ++next[i] + (rng() % 8 == 0 ? rng() % 5 : 0);
            next[i] = s;
            break;
        }
        std::set<uint64_t>& seen = oracle[{poller, instance}];
        const FailureId id = Id(poller, instance, s);
        if (rng() % 3 != 0) {
          const bool was_seen = seen.count(s) == 1;
          // false = "was remembered", which needs an earlier insertion.
          if (!recent.Insert(id)) {
            ASSERT_TRUE(was_seen) << poller << "/" << instance << "/" << s;
          }
          seen.insert(s);
        }
        // Probe around the producer's frontier and at random.
        for (uint64_t probe : {s - 1, s, s + 1, 1 + rng() % 400}) {
          const bool in_oracle = seen.count(probe) == 1;
          const bool in_filter = recent.Contains(Id(poller, instance, probe));
          if (in_filter) {
            ASSERT_TRUE(in_oracle) << poller << "/" << instance << "/" << probe
                                   << " reported seen but never inserted";
          }
          if (in_oracle && !in_filter) ++false_negatives;
        }
        const RecentFailures::Stats stats = recent.stats();
        ASSERT_LE(stats.instances, config.options.max_instances);
        ASSERT_LE(stats.runs, config.options.max_runs);
      }
      // Full sweep.
      for (const auto& [key, seen] : oracle) {
        for (uint64_t s = 0; s <= 1000; ++s) {
          const bool in_filter = recent.Contains(Id(key.first, key.second, s));
          if (in_filter) {
            ASSERT_EQ(seen.count(s), 1u) << s;
          }
          if (!in_filter && seen.count(s) == 1) ++false_negatives;
        }
      }
      const RecentFailures::Stats stats = recent.stats();
      if (stats.forgotten_runs == 0 && stats.evicted_instances == 0) {
        EXPECT_EQ(false_negatives, 0u);  // exact when nothing was forgotten
      }
      if (std::string(config.name) == "roomy") {
        EXPECT_EQ(stats.forgotten_runs + stats.evicted_instances, 0u);
      }
    }
  }
}

// The tracker's loop against producers that resend unacknowledged failures
// (refusals, lost acknowledgements, several batches in flight): every failure
// ends up written, and one acknowledged as a duplicate had been written
// before. Tight limits make the filter forget a lot; that may cost duplicate
// writes, never an acknowledgement without a write.
TEST(RecentFailuresTest, SimulatedProducersLoseNothing) {
  const std::vector<RecentFailures::Options> limits = {
      Limits(4, 3, 100),   // per-instance cap binds
      Limits(3, 4, 10),    // instance and total caps bind
      Limits(8, 64, 1000)  // roomy
  };
  for (const RecentFailures::Options& options : limits) {
    for (uint32_t seed = 1; seed <= 10; ++seed) {
      SCOPED_TRACE(testing::Message()
                   << "per instance " << options.max_runs_per_instance
                   << " seed " << seed);
      std::mt19937_64 rng(seed);
      RecentFailures recent(options);
      constexpr int kProducers = 4;
      constexpr uint64_t kFailures = 2000;
      std::vector<std::deque<uint64_t>> pending(kProducers);  // unacked
      std::vector<uint64_t> produced(kProducers, 0);
      std::set<std::pair<int, uint64_t>> written;
      uint64_t duplicates = 0;
      for (int round = 0; round < 1000000; ++round) {
        const int p = static_cast<int>(rng() % kProducers);
        for (uint64_t n = rng() % 4; n > 0 && produced[p] < kFailures; --n) {
          pending[p].push_back(++produced[p]);
        }
        if (pending[p].empty()) {
          bool all_done = true;
          for (int q = 0; q < kProducers; ++q) {
            all_done &= pending[q].empty() && produced[q] == kFailures;
          }
          if (all_done) break;
          continue;
        }
        // A batch of unacknowledged ones from somewhere in the window (the
        // earlier ones are in flight or were refused), sometimes reordered.
        std::deque<uint64_t>& queue = pending[p];
        const size_t from = rng() % std::min<size_t>(queue.size(), 24);
        const size_t to = std::min(queue.size(), from + 1 + rng() % 6);
        std::vector<uint64_t> batch(
            queue.begin() + static_cast<std::ptrdiff_t>(from),
            queue.begin() + static_cast<std::ptrdiff_t>(to));
        if (rng() % 4 == 0) std::shuffle(batch.begin(), batch.end(), rng);
        const bool lose_acks = rng() % 5 == 0;  // the stream breaks
        for (uint64_t s : batch) {
          const FailureId id = Id("poller" + std::to_string(p), "i", s);
          bool acked = false;
          if (recent.Contains(id)) {
            ASSERT_EQ(written.count({p, s}), 1u) << "acknowledged unwritten";
            ++duplicates;
            acked = true;
          } else if (rng() % 4 != 0) {  // else refused: not inserted
            written.insert({p, s});
            recent.Insert(id);
            acked = true;
          }
          if (acked && !lose_acks) {
            queue.erase(std::find(queue.begin(), queue.end(), s));
          }
        }
      }
      EXPECT_EQ(written.size(), kProducers * kFailures);
      EXPECT_GT(duplicates, 0u);
    }
  }
}

TEST(RecentFailuresTest, EightThreadsConcurrently) {
  // Roomy enough that nothing is forgotten even when one thread runs far
  // ahead and leaves thousands of gaps in the shared instance.
  RecentFailures recent(Limits(64, 1 << 20, 1 << 22));
  constexpr int kThreads = 8;
  constexpr uint64_t kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&recent, t] {
      const std::string own = "thread" + std::to_string(t);
      for (uint64_t i = 1; i <= kPerThread; ++i) {
        // Its own instance, pairs swapped (two batches in flight).
        const uint64_t s = (i % 2 == 1) ? i + 1 : i - 1;
        if (s <= kPerThread) recent.Insert(Id(own, "i", s));
        // A shared instance: sequences t+1, t+1+8, ... interleave with the
        // other threads'; one not yet inserted is never seen.
        const uint64_t shared =
            (i - 1) * kThreads + static_cast<uint64_t>(t) + 1;
        if (recent.Contains(Id("shared", "x", shared))) {
          ADD_FAILURE() << "seen before insertion: " << shared;
          return;
        }
        recent.Insert(Id("shared", "x", shared));
        if (!recent.Contains(Id("shared", "x", shared))) {
          ADD_FAILURE() << "not seen after insertion: " << shared;
          return;
        }
      }
      if (kPerThread % 2 == 1) recent.Insert(Id(own, "i", kPerThread));
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    const std::string own = "thread" + std::to_string(t);
    for (uint64_t s = 1; s <= kPerThread; ++s) {
      ASSERT_TRUE(recent.Contains(Id(own, "i", s))) << own << " " << s;
    }
    EXPECT_FALSE(recent.Contains(Id(own, "i", kPerThread + 1)));
  }
  for (uint64_t s = 1; s <= kThreads * kPerThread; ++s) {
    ASSERT_TRUE(recent.Contains(Id("shared", "x", s))) << s;
  }
  EXPECT_EQ(recent.instances(), static_cast<size_t>(kThreads) + 1);
  EXPECT_EQ(recent.runs(), static_cast<size_t>(kThreads) + 1);  // all merged
  EXPECT_EQ(recent.stats().forgotten_runs, 0u);
}

TEST(RecentFailuresTest, MillionInOrderFailuresAcrossTenInstancesStaySmall) {
  RecentFailures recent(RecentFailures::OptionsForDedupeWindow(1000000));
  constexpr int kInstances = 10;
  const std::string instance_id = "0123456789abcdef0123456789abcdef";
  for (uint64_t s = 1; s <= 100000; ++s) {
    for (int i = 0; i < kInstances; ++i) {
      recent.Insert(Id("poller-host-" + std::to_string(i), instance_id, s));
    }
  }
  EXPECT_EQ(recent.instances(), 10u);
  EXPECT_EQ(recent.runs(), 10u);  // one high-water mark each
  EXPECT_LT(recent.approximate_bytes(), 4096u);
  EXPECT_TRUE(recent.Contains(Id("poller-host-3", instance_id, 1)));
  EXPECT_TRUE(recent.Contains(Id("poller-host-3", instance_id, 100000)));
  EXPECT_FALSE(recent.Contains(Id("poller-host-3", instance_id, 100001)));
}

TEST(RecentFailuresTest, OutOfOrderBurstsShrinkBackWhenTheGapsClose) {
  RecentFailures recent(Defaults());
  // Batches of 64 arrive shuffled: at most 32 runs in between.
  std::mt19937_64 rng(7);
  std::vector<uint64_t> batch(64);
  size_t most_runs = 0;
  for (uint64_t base = 0; base < 1000000; base += 64) {
    for (uint64_t k = 0; k < 64; ++k) batch[k] = base + k + 1;
    std::shuffle(batch.begin(), batch.end(), rng);
    for (uint64_t s : batch) {
      recent.Insert(Seq(s));
      most_runs = std::max(most_runs, recent.runs());
    }
  }
  EXPECT_LE(most_runs, 33u);
  EXPECT_EQ(recent.runs(), 1u);
  // A burst of 2,000 singletons, then the gaps are filled.
  for (uint64_t s = 2000002; s <= 2004000; s += 2) recent.Insert(Seq(s));
  EXPECT_EQ(recent.runs(), 2001u);
  const size_t burst_bytes = recent.approximate_bytes();
  EXPECT_GE(burst_bytes, 2001 * 16u);
  for (uint64_t s = 1000001; s <= 2004000; s += 1) recent.Insert(Seq(s));
  EXPECT_EQ(recent.runs(), 1u);
  EXPECT_LT(recent.approximate_bytes(), 1024u);
}

TEST(RecentFailuresTest, OneScatteredInstanceIsBoundedByItsCap) {
  RecentFailures recent(Defaults());
  // Every other sequence (e.g. a producer load-balanced over two trackers).
  for (uint64_t s = 1; s <= 200000; s += 2) recent.Insert(Seq(s));
  EXPECT_EQ(recent.runs(), 4096u);
  EXPECT_LT(recent.approximate_bytes(), 4096 * 32 + 1024u);
  EXPECT_TRUE(recent.Contains(Seq(199999)));
  EXPECT_FALSE(recent.Contains(Seq(199998)));  // gaps never seen
  EXPECT_FALSE(recent.Contains(Seq(1)));       // forgotten
}

}  // namespace
}  // namespace qfp::tracker
