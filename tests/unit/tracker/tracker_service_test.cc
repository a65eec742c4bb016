// TrackerService over real gRPC on loopback, with a real DurableQueue (in
// memory; its writer points at a port where nothing listens, so what is
// accepted stays queued and countable).
#include "tracker-service/tracker_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "failedpolls/v1/failed_polls.grpc.pb.h"
#include "grpc/grpc.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/grpc_library.h"
#include "tests/testing/metric_value.h"
#include "tests/testing/temp_dir.h"
#include "tracker-service/influx_v1_writer.h"

namespace qfp::tracker {
namespace {

using failedpolls::v1::FailureId;
using failedpolls::v1::PollFailure;
using failedpolls::v1::ReportFailuresRequest;
using failedpolls::v1::ReportFailuresResponse;

PollFailure Failure(uint64_t sequence) {
  PollFailure f;
  f.mutable_id()->set_poller_id("p1");
  f.mutable_id()->set_instance_id("i1");
  f.mutable_id()->set_sequence(sequence);
  f.mutable_occurred_at()->set_seconds(1764000000);
  f.mutable_occurred_at()->set_nanos(static_cast<int32_t>(sequence));
  f.set_source(failedpolls::v1::HEALTH_API);
  f.set_server_name("sense1");
  f.set_host("sense1:4747");
  f.set_error_category(failedpolls::v1::ERROR_CATEGORY_TIMEOUT);
  f.set_error_code("ECONNABORTED");
  return f;
}

// What happens asynchronously (points the tracker makes itself, a stream's
// end on the server): wait, bounded.
bool WaitUntil(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

class TrackerServiceTest : public ::testing::Test {
 protected:
  // A queue of at most `max_records` points; in memory, or in SQLite in
  // `directory` (then the store answers on its writer thread, later).
  void Start(uint64_t max_records, const std::string& directory = "") {
    InfluxV1Settings nowhere;
    nowhere.host = "127.0.0.1";
    nowhere.port = 9;
    nowhere.database = "senseops";
    writer_ = MakeInfluxV1Writer(nowhere);
    DurableQueueOptions options;
    options.max_records = max_records;
    options.directory = directory;
    auto queue = DurableQueue::Open(options, *writer_, metrics_);
    ASSERT_TRUE(queue.ok()) << queue.status();
    queue_ = *std::move(queue);
    service_ = std::make_unique<TrackerService>(
        config_, nullptr, queue_.get(), metrics_, FailureLimits{}, *clock_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    if (listen_ipv6_) {
      // A second peer address on the same host: clients of ::1 are not
      // clients of 127.0.0.1.
      builder.AddListeningPort("[::1]:0", grpc::InsecureServerCredentials(),
                               &port6_);
    }
    if (connection_limits_.has_value()) {
      TrackerService::ApplyLimits(builder, *connection_limits_);
    }
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = failedpolls::v1::FailedPollTracker::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
    if (queue_) queue_->Stop(absl::ZeroDuration());
  }

  // Sends one request on a new stream and returns the one answer.
  ReportFailuresResponse Send(const ReportFailuresRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(20));
    auto stream = stub_->ReportFailures(&context);
    EXPECT_TRUE(stream->Write(request));
    ReportFailuresResponse response;
    EXPECT_TRUE(stream->Read(&response));
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
    return response;
  }
  double Metric(absl::string_view sample) const {
    return testing::MetricValue(metrics_, sample);
  }

  TrackerConfig config_;
  const Clock* clock_ = &SystemClock::Get();
  MetricsRegistry metrics_;
  std::unique_ptr<InfluxWriter> writer_;
  std::unique_ptr<DurableQueue> queue_;
  std::unique_ptr<TrackerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<failedpolls::v1::FailedPollTracker::Stub> stub_;
  int port_ = 0;
  bool listen_ipv6_ = false;  // also serve on [::1]:port6_
  // The server's connection limits (TrackerService::ApplyLimits) when set.
  std::optional<ConnectionLimits> connection_limits_;
  int port6_ = 0;
};

TEST_F(TrackerServiceTest, AcceptsCommitsAndAcknowledgesOnce) {
  Start(100);
  ReportFailuresRequest request;
  *request.add_failures() = Failure(1);
  *request.add_failures() = Failure(2);
  ReportFailuresResponse response = Send(request);
  EXPECT_EQ(response.accepted_size(), 2);
  EXPECT_EQ(response.refused_size(), 0);
  EXPECT_EQ(queue_->backlog(), 2u);
  // A re-send is acknowledged again without a second point.
  response = Send(request);
  EXPECT_EQ(response.accepted_size(), 2);
  EXPECT_EQ(queue_->backlog(), 2u);
  EXPECT_EQ(Metric("qfp_tracker_failures_accepted_total"), 2);
  EXPECT_EQ(Metric("qfp_tracker_failures_duplicate_total"), 2);
}

TEST_F(TrackerServiceTest, TheSameIdTwiceInOneRequestIsOnePoint) {
  Start(100);
  ReportFailuresRequest request;
  *request.add_failures() = Failure(7);
  *request.add_failures() = Failure(7);
  const ReportFailuresResponse response = Send(request);
  EXPECT_EQ(response.accepted_size(), 2);
  EXPECT_EQ(response.refused_size(), 0);
  EXPECT_EQ(queue_->backlog(), 1u);
}

// A repeat must share the first copy's fate: acknowledging it while the
// first copy is refused would tell the producer to forget a failure that
// was never stored.
TEST_F(TrackerServiceTest, ARepeatOfARefusedFailureIsRefusedToo) {
  Start(1);
  ReportFailuresRequest fill;
  *fill.add_failures() = Failure(1);
  ASSERT_EQ(Send(fill).accepted_size(), 1);  // the queue is now full
  ReportFailuresRequest request;
  *request.add_failures() = Failure(2);
  *request.add_failures() = Failure(2);
  const ReportFailuresResponse response = Send(request);
  EXPECT_EQ(response.accepted_size(), 0);
  ASSERT_EQ(response.refused_size(), 2);
  for (const auto& refusal : response.refused()) {
    EXPECT_EQ(refusal.id().sequence(), 2u);
    EXPECT_NE(refusal.reason().find("full"), std::string::npos)
        << refusal.reason();
  }
  EXPECT_EQ(
      Metric("qfp_tracker_failures_refused_total{reason=\"buffer_full\"}"), 2);
  for (const auto& refusal : response.refused()) {
    EXPECT_EQ(refusal.code(), failedpolls::v1::REFUSAL_CODE_RESOURCE_EXHAUSTED);
  }
}

TEST_F(TrackerServiceTest, AMalformedFailureIsRefusedAlone) {
  Start(100);
  ReportFailuresRequest request;
  *request.add_failures() = Failure(1);
  PollFailure no_server = Failure(2);
  no_server.clear_server_name();
  *request.add_failures() = no_server;
  const ReportFailuresResponse response = Send(request);
  ASSERT_EQ(response.accepted_size(), 1);
  EXPECT_EQ(response.accepted(0).sequence(), 1u);
  ASSERT_EQ(response.refused_size(), 1);
  EXPECT_EQ(response.refused(0).id().sequence(), 2u);
  EXPECT_EQ(response.refused(0).code(),
            failedpolls::v1::REFUSAL_CODE_INVALID_ARGUMENT);
  EXPECT_EQ(Metric("qfp_tracker_failures_refused_total{reason=\"missing_id\"}"),
            1);
}

// Each kind of bad item is refused alone, as not to be resent, and counted
// under its reason; the good ones around it are stored; the stream stays up
// for the next request.
TEST_F(TrackerServiceTest, HostileItemsAreRefusedOneByOneByReason) {
  Start(100);
  ReportFailuresRequest request;
  *request.add_failures() = Failure(1);
  PollFailure unknown_source = Failure(2);
  unknown_source.set_source(static_cast<failedpolls::v1::PollSource>(77));
  *request.add_failures() = unknown_source;
  PollFailure long_host = Failure(3);
  long_host.set_host(std::string(100000, 'h'));
  *request.add_failures() = long_host;
  PollFailure forged = Failure(4);
  forged.set_message("ok\n[error] forged log line");
  *request.add_failures() = forged;
  PollFailure future = Failure(5);
  future.mutable_occurred_at()->set_seconds(
      absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
  *request.add_failures() = future;
  PollFailure tags = Failure(6);
  for (int i = 0; i < 65; ++i) {
    (*tags.mutable_server_tags())[absl::StrCat("k", i)] = "v";
  }
  *request.add_failures() = tags;
  *request.add_failures() = Failure(7);

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  auto stream = stub_->ReportFailures(&context);
  ASSERT_TRUE(stream->Write(request));
  ReportFailuresResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_EQ(response.accepted_size(), 2);
  EXPECT_EQ(response.accepted(0).sequence(), 1u);
  EXPECT_EQ(response.accepted(1).sequence(), 7u);
  ASSERT_EQ(response.refused_size(), 5);
  for (const auto& refusal : response.refused()) {
    EXPECT_EQ(refusal.code(), failedpolls::v1::REFUSAL_CODE_INVALID_ARGUMENT)
        << refusal.reason();
    EXPECT_LT(refusal.reason().size(), 200u);  // never echoes the bytes
  }
  EXPECT_EQ(response.refused(1).reason(),
            "host is 100000 bytes, over the limit of 1024");
  EXPECT_EQ(
      Metric("qfp_tracker_failures_refused_total{reason=\"unknown_enum\"}"), 1);
  EXPECT_EQ(Metric("qfp_tracker_failures_refused_total{reason=\"too_long\"}"),
            1);
  EXPECT_EQ(Metric("qfp_tracker_failures_refused_total{reason=\"bad_text\"}"),
            1);
  EXPECT_EQ(Metric("qfp_tracker_failures_refused_total{reason=\"bad_time\"}"),
            1);
  EXPECT_EQ(
      Metric("qfp_tracker_failures_refused_total{reason=\"too_many_tags\"}"),
      1);
  EXPECT_EQ(queue_->backlog(), 2u);

  // The same stream takes the next request.
  ReportFailuresRequest next;
  *next.add_failures() = Failure(8);
  ASSERT_TRUE(stream->Write(next));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_EQ(response.accepted_size(), 1);
  EXPECT_EQ(response.accepted(0).sequence(), 8u);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// A server tag key line protocol would change into the `host` tag is
// refused on the item, at the stream, under its own reason; the rest of the
// request is stored and the stream goes on.
TEST_F(TrackerServiceTest, AServerTagKeyThatWouldChangeIsRefusedAlone) {
  config_.schema.include_server_tags = true;
  Start(100);
  ReportFailuresRequest request;
  *request.add_failures() = Failure(1);
  PollFailure posing = Failure(2);
  (*posing.mutable_server_tags())["host\\"] = "elsewhere:4747";
  *request.add_failures() = posing;
  *request.add_failures() = Failure(3);
  const ReportFailuresResponse response = Send(request);
  ASSERT_EQ(response.accepted_size(), 2);
  EXPECT_EQ(response.accepted(0).sequence(), 1u);
  EXPECT_EQ(response.accepted(1).sequence(), 3u);
  ASSERT_EQ(response.refused_size(), 1);
  EXPECT_EQ(response.refused(0).id().sequence(), 2u);
  EXPECT_EQ(response.refused(0).code(),
            failedpolls::v1::REFUSAL_CODE_INVALID_ARGUMENT);
  EXPECT_EQ(response.refused(0).reason(),
            "a server_tags key ends in a backslash and would be written as "
            "the tag host");
  EXPECT_EQ(
      Metric("qfp_tracker_failures_refused_total{reason=\"bad_tag_key\"}"), 1);
  // None counted (a series not yet used is absent: -1).
  EXPECT_LE(
      Metric("qfp_tracker_failures_refused_total{reason=\"unencodable\"}"), 0);
  EXPECT_EQ(queue_->backlog(), 2u);
}

// The one clash CheckFailure cannot see, with a static tag, is still refused
// on the item (as unencodable), never written wrong or dropped.
TEST_F(TrackerServiceTest, AServerTagKeyThatWouldBeAStaticTagIsUnencodable) {
  config_.schema.include_server_tags = true;
  config_.schema.static_tags = {{"env", "prod"}};
  Start(100);
  ReportFailuresRequest request;
  PollFailure clash = Failure(1);
  (*clash.mutable_server_tags())["env\\"] = "test";
  *request.add_failures() = clash;
  *request.add_failures() = Failure(2);
  const ReportFailuresResponse response = Send(request);
  ASSERT_EQ(response.accepted_size(), 1);
  EXPECT_EQ(response.accepted(0).sequence(), 2u);
  ASSERT_EQ(response.refused_size(), 1);
  EXPECT_EQ(response.refused(0).id().sequence(), 1u);
  EXPECT_EQ(
      Metric("qfp_tracker_failures_refused_total{reason=\"unencodable\"}"), 1);
}

TEST(TrackerServicePeerTest, PeerAddressIsTheAddressWithoutThePort) {
  EXPECT_EQ(TrackerService::PeerAddress("ipv4:127.0.0.1:53412"), "127.0.0.1");
  EXPECT_EQ(TrackerService::PeerAddress("ipv4:10.1.2.3:1"), "10.1.2.3");
  EXPECT_EQ(TrackerService::PeerAddress("ipv6:[::1]:53412"), "::1");
  EXPECT_EQ(TrackerService::PeerAddress("ipv6:%5B::1%5D:53412"), "::1");
  EXPECT_EQ(TrackerService::PeerAddress("ipv6:%5Bfd00::7%5D:9"), "fd00::7");
  EXPECT_EQ(TrackerService::PeerAddress("ipv6:[::ffff:10.0.0.7]:80"),
            "::ffff:10.0.0.7");
  EXPECT_EQ(TrackerService::PeerAddress("unix:/run/qfp.sock"),
            "unix:/run/qfp.sock");
  EXPECT_EQ(TrackerService::PeerAddress(""), "");
  EXPECT_EQ(TrackerService::PeerAddress("ipv4:"), "");
}

// One open ReportFailures stream that has been answered once (so the
// tracker holds its place).
struct OpenStream {
  grpc::ClientContext context;
  std::unique_ptr<
      grpc::ClientReaderWriter<ReportFailuresRequest, ReportFailuresResponse>>
      stream;
};

// Opens a stream on `stub` and sends one failure; returns the stream once
// it was answered, or the status it ended with.
absl::StatusOr<std::unique_ptr<OpenStream>> Open(
    failedpolls::v1::FailedPollTracker::Stub& stub, uint64_t sequence) {
  auto open = std::make_unique<OpenStream>();
  open->context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(20));
  open->stream = stub.ReportFailures(&open->context);
  ReportFailuresRequest request;
  *request.add_failures() = Failure(sequence);
  ReportFailuresResponse response;
  if (open->stream->Write(request) && open->stream->Read(&response)) {
    if (response.accepted_size() != 1) {
      return absl::InternalError(response.DebugString());
    }
    return open;
  }
  const grpc::Status status = open->stream->Finish();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

// A TCP connection to 127.0.0.1:`port` that has sent `bytes`; -1 on error.
int ConnectRaw(int port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address),
              sizeof(address)) != 0 ||
      (!bytes.empty() && send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) !=
                             static_cast<ssize_t>(bytes.size()))) {
    close(fd);
    return -1;
  }
  return fd;
}

// Whether the server closed `fd` within `timeout` (reads and drops what it
// sends before: its SETTINGS, a GOAWAY).
bool ClosedByServer(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  char buffer[4096];
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return true;  // EOF, or reset
  }
  return false;
}

// A connection that never finishes its handshake, and one that does (the
// HTTP/2 preface and SETTINGS) but never opens a call, are both closed by
// the server; a stream held open past the idle limit is not.
TEST_F(TrackerServiceTest, ConnectionsLeftUnusedAreClosed) {
  connection_limits_ =
      ConnectionLimits{absl::Milliseconds(500), absl::Milliseconds(1500)};
  Start(100);
  // A client's HTTP/2 connection preface: the magic, then an empty SETTINGS
  // frame (length 0, type 4, flags 0, stream 0); RFC 9113 section 3.4.
  const std::string preface = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                              std::string("\0\0\0\4\0\0\0\0\0", 9);

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  auto held = stub_->ReportFailures(&context);
  ReportFailuresRequest first;
  *first.add_failures() = Failure(1);
  ASSERT_TRUE(held->Write(first));
  ReportFailuresResponse answer;
  ASSERT_TRUE(held->Read(&answer));

  const int silent = ConnectRaw(port_, "");
  const int idle = ConnectRaw(port_, preface);
  ASSERT_GE(silent, 0);
  ASSERT_GE(idle, 0);
  EXPECT_TRUE(ClosedByServer(silent, absl::Seconds(10)));
  EXPECT_TRUE(ClosedByServer(idle, absl::Seconds(10)));
  close(silent);
  close(idle);

  // Well past the idle limit: the stream with a call open still serves.
  ReportFailuresRequest second;
  *second.add_failures() = Failure(2);
  ASSERT_TRUE(held->Write(second));
  ASSERT_TRUE(held->Read(&answer));
  EXPECT_EQ(answer.accepted_size(), 1);
  held->WritesDone();
  EXPECT_TRUE(held->Finish().ok());
}

// Peer A (127.0.0.1) at kMaxStreamsPerPeer is refused at once while peer B
// (::1) still gets a stream; once one of A's streams ends, A gets one again.
TEST_F(TrackerServiceTest, APeerAtItsLimitIsRefusedWhileAnotherIsServed) {
  {
    // Loopback IPv6 may be off (a container without it): nothing to test.
    const int probe = socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_loopback;
    const bool ipv6 =
        probe >= 0 && bind(probe, reinterpret_cast<sockaddr*>(&address),
                           sizeof(address)) == 0;
    if (probe >= 0) close(probe);
    if (!ipv6) GTEST_SKIP() << "no IPv6 loopback";
  }
  listen_ipv6_ = true;
  Start(1000);
  // Each stub on a connection of its own, so that a peer's streams come
  // from several ports: the limit counts the address.
  auto stubs = [](const std::string& target, int n) {
    std::vector<std::unique_ptr<failedpolls::v1::FailedPollTracker::Stub>> out;
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    for (int i = 0; i < n; ++i) {
      out.push_back(
          failedpolls::v1::FailedPollTracker::NewStub(grpc::CreateCustomChannel(
              target, grpc::InsecureChannelCredentials(), args)));
    }
    return out;
  };
  const int limit = TrackerService::kMaxStreamsPerPeer;
  auto a = stubs(absl::StrCat("127.0.0.1:", port_), 5);
  auto b = stubs(absl::StrCat("[::1]:", port6_), 5);
  const std::string peer_full =
      "too many open streams from this address; retry later";
  uint64_t sequence = 0;
  std::vector<std::unique_ptr<OpenStream>> peer_a;
  for (int i = 0; i < limit; ++i) {
    absl::StatusOr<std::unique_ptr<OpenStream>> open =
        Open(*a[static_cast<size_t>(i % 4)], ++sequence);
    ASSERT_TRUE(open.ok()) << "stream " << i << ": " << open.status();
    peer_a.push_back(*std::move(open));
  }
  EXPECT_EQ(service_->open_streams(), limit);
  EXPECT_EQ(Metric("qfp_tracker_streams_open"), limit);

  // A's next stream, on a new connection, is refused at once.
  absl::StatusOr<std::unique_ptr<OpenStream>> refused = Open(*a[4], ++sequence);
  EXPECT_EQ(refused.status(), absl::ResourceExhaustedError(peer_full));
  EXPECT_EQ(Metric("qfp_tracker_streams_refused_total{reason=\"max_streams_"
                   "per_peer\"}"),
            1);

  // Peer B is served, up to its own limit.
  std::vector<std::unique_ptr<OpenStream>> peer_b;
  for (int i = 0; i < limit; ++i) {
    absl::StatusOr<std::unique_ptr<OpenStream>> open =
        Open(*b[static_cast<size_t>(i % 4)], ++sequence);
    ASSERT_TRUE(open.ok()) << "stream " << i << " of B: " << open.status();
    peer_b.push_back(*std::move(open));
  }
  EXPECT_EQ(Open(*b[4], ++sequence).status(),
            absl::ResourceExhaustedError(peer_full));
  EXPECT_EQ(Metric("qfp_tracker_streams_refused_total{reason=\"max_streams_"
                   "per_peer\"}"),
            2);
  EXPECT_EQ(Metric("qfp_tracker_streams_refused_total{reason=\"max_streams\"}"),
            0);
  for (auto& open : peer_b) {
    open->stream->WritesDone();
    EXPECT_TRUE(open->stream->Finish().ok());
  }

  // One of A's streams ends: its place is A's again (the server counts the
  // end when the call is done, a moment after Finish returns).
  peer_a.back()->stream->WritesDone();
  EXPECT_TRUE(peer_a.back()->stream->Finish().ok());
  peer_a.pop_back();
  ASSERT_TRUE(WaitUntil([&] {
    return service_->open_streams() < TrackerService::kMaxStreamsPerPeer;
  }));
  absl::StatusOr<std::unique_ptr<OpenStream>> again = Open(*a[4], ++sequence);
  ASSERT_TRUE(again.ok()) << again.status();
  peer_a.push_back(*std::move(again));
  for (auto& open : peer_a) {
    open->stream->WritesDone();
    EXPECT_TRUE(open->stream->Finish().ok());
  }
}

}  // namespace
}  // namespace qfp::tracker

namespace qfp::tracker {
namespace {

// Several requests in flight on one stream, stored by SQLite on its writer
// thread, while every other request is answered at once (all malformed):
// still one answer per request, in request order, each with its own ids.
TEST_F(TrackerServiceTest, AnswersComeInRequestOrderWhileCommitsOverlap) {
  testing::TempDir dir;
  Start(100000, dir.File("queue"));
  constexpr int kRequests = 40;
  constexpr int kPerRequest = 50;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  auto stream = stub_->ReportFailures(&context);
  uint64_t sequence = 0;
  for (int r = 0; r < kRequests; ++r) {
    ReportFailuresRequest request;
    if (r % 2 == 0) {
      for (int i = 0; i < kPerRequest; ++i) {
        *request.add_failures() = Failure(++sequence);
      }
    } else {
      PollFailure malformed = Failure(1000000 + static_cast<uint64_t>(r));
      malformed.clear_server_name();
      *request.add_failures() = malformed;
    }
    ASSERT_TRUE(stream->Write(request));
  }
  stream->WritesDone();
  uint64_t expected_sequence = 0;
  for (int r = 0; r < kRequests; ++r) {
    ReportFailuresResponse response;
    ASSERT_TRUE(stream->Read(&response)) << "answer " << r;
    if (r % 2 == 0) {
      ASSERT_EQ(response.accepted_size(), kPerRequest) << "answer " << r;
      EXPECT_EQ(response.refused_size(), 0);
      for (const FailureId& id : response.accepted()) {
        EXPECT_EQ(id.sequence(), ++expected_sequence) << "answer " << r;
      }
    } else {
      EXPECT_EQ(response.accepted_size(), 0) << "answer " << r;
      ASSERT_EQ(response.refused_size(), 1) << "answer " << r;
      EXPECT_EQ(response.refused(0).id().sequence(),
                1000000 + static_cast<uint64_t>(r));
    }
  }
  ReportFailuresResponse extra;
  EXPECT_FALSE(stream->Read(&extra));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(queue_->backlog(), kRequests / 2 * kPerRequest);
  EXPECT_EQ(Metric("qfp_tracker_failures_accepted_total"),
            kRequests / 2 * kPerRequest);
}

// A copy that cannot be written does not make a later copy of the same id a
// repeat: that one is stored on its own, and acknowledged only then.
TEST_F(TrackerServiceTest, ARefusedFirstCopyDoesNotVouchForTheNext) {
  config_.schema.include_server_tags = true;
  Start(100);
  ReportFailuresRequest request;
  PollFailure unencodable = Failure(5);
  (*unencodable.mutable_server_tags())[""] = "empty tag key";
  *request.add_failures() = unencodable;
  *request.add_failures() = Failure(5);
  *request.add_failures() = Failure(6);
  const ReportFailuresResponse response = Send(request);
  ASSERT_EQ(response.refused_size(), 1);
  EXPECT_EQ(response.refused(0).id().sequence(), 5u);
  ASSERT_EQ(response.accepted_size(), 2);
  EXPECT_EQ(response.accepted(0).sequence(), 5u);
  EXPECT_EQ(response.accepted(1).sequence(), 6u);
  EXPECT_EQ(queue_->backlog(), 2u);  // both stored, neither vouched for
}

// A producer that cancels with requests still being stored leaves a
// service that serves the next producer, and every failure it accepted is
// in the queue exactly once.
TEST_F(TrackerServiceTest, ACancelledStreamLeavesTheServiceServing) {
  testing::TempDir dir;
  Start(100000, dir.File("queue"));
  uint64_t sequence = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    grpc::ClientContext context;
    auto stream = stub_->ReportFailures(&context);
    for (int r = 0; r < 20; ++r) {
      ReportFailuresRequest request;
      for (int i = 0; i < 100; ++i)
        *request.add_failures() = Failure(++sequence);
      if (!stream->Write(request)) break;
    }
    context.TryCancel();
    stream->Finish();
  }
  ReportFailuresRequest request;
  *request.add_failures() = Failure(++sequence);
  const ReportFailuresResponse response = Send(request);
  ASSERT_EQ(response.accepted_size(), 1);
  EXPECT_EQ(response.accepted(0).sequence(), sequence);
  // Everything admitted was stored (cancelling loses no commit), once. A
  // cancelled stream's last read may be admitted after the request above,
  // and is concluded (counted) after its commit; a stream ends only once
  // all it admitted is concluded, so wait for every stream to end, bounded
  // (the two counts can be equal for a moment before that last read).
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (Metric("qfp_tracker_streams_open") != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(Metric("qfp_tracker_streams_open"), 0);
  EXPECT_EQ(static_cast<double>(queue_->backlog()),
            Metric("qfp_tracker_failures_accepted_total"));
}

// --- Heartbeats (our addition). ---

failedpolls::v1::Heartbeat Heartbeat(const std::string& poller_id,
                                     int64_t sent_seconds, int targets) {
  failedpolls::v1::Heartbeat beat;
  beat.set_poller_id(poller_id);
  beat.set_instance_id("i1");
  beat.mutable_sent_at()->set_seconds(sent_seconds);
  beat.set_interval_ms(1000);
  for (int i = 0; i < targets; ++i) {
    auto* target = beat.add_targets();
    target->set_source(failedpolls::v1::HEALTH_API);
    target->set_server_name(absl::StrCat("sense", i));
    target->set_host(absl::StrCat("sense", i, ":4747"));
    target->set_attempted(3);
    target->set_failed(1);
  }
  return beat;
}

class TrackerHeartbeatTest : public TrackerServiceTest {
 protected:
  TrackerHeartbeatTest() { clock_ = &fake_clock_; }
  FakeClock fake_clock_{absl::FromUnixSeconds(1764000000)};
};

// A request holding only a heartbeat is answered (empty), as every request
// is, so a producer's accounting of answers is unchanged; with
// pollAttempts.enable it becomes one point per target.
TEST_F(TrackerHeartbeatTest, AHeartbeatAloneGetsAnEmptyAnswerAndItsPoints) {
  config_.poll_attempts_enabled = true;
  Start(100);
  ReportFailuresRequest request;
  *request.mutable_heartbeat() = Heartbeat("p1", 1764000000, 3);
  const ReportFailuresResponse response = Send(request);
  EXPECT_EQ(response.accepted_size(), 0);
  EXPECT_EQ(response.refused_size(), 0);
  ASSERT_TRUE(WaitUntil([&] { return queue_->backlog() == 3u; }));
  EXPECT_EQ(Metric("qfp_tracker_heartbeats_used_total"), 1);
  EXPECT_EQ(Metric("qfp_tracker_failures_accepted_total"), 0);
}

TEST_F(TrackerHeartbeatTest, AttemptsPointsAreOffByDefault) {
  Start(100);
  ReportFailuresRequest request;
  *request.mutable_heartbeat() = Heartbeat("p1", 1764000000, 3);
  *request.add_failures() = Failure(1);
  const ReportFailuresResponse response = Send(request);
  EXPECT_EQ(response.accepted_size(), 1);
  EXPECT_EQ(queue_->backlog(), 1u);  // the failure's point only
  EXPECT_EQ(Metric("qfp_tracker_heartbeats_used_total"), 1);
}

// A bad heartbeat is ignored alone: the failures beside it are accepted.
TEST_F(TrackerHeartbeatTest, AnInvalidHeartbeatIsIgnoredNotTheFailures) {
  config_.poll_attempts_enabled = true;
  Start(100);
  ReportFailuresRequest request;
  *request.mutable_heartbeat() = Heartbeat("p1", 1764000000, 2);
  request.mutable_heartbeat()->mutable_targets(1)->set_failed(9);
  *request.add_failures() = Failure(1);
  const ReportFailuresResponse response = Send(request);
  EXPECT_EQ(response.accepted_size(), 1);
  EXPECT_EQ(queue_->backlog(), 1u);
  EXPECT_EQ(Metric("qfp_tracker_heartbeats_received_total"), 1);
  EXPECT_EQ(Metric("qfp_tracker_heartbeats_used_total"), 0);
}

// A producer newer than this tracker may send fields it does not know; a
// tracker older than heartbeats sees our field 2 the same way. Both are
// skipped by the same parsing code (stream_messages.cc), and the failures
// beside them are accepted.
TEST_F(TrackerHeartbeatTest, UnknownFieldsAreSkipped) {
  Start(100);
  ReportFailuresRequest request;
  *request.add_failures() = Failure(1);
  request.GetReflection()->MutableUnknownFields(&request)->AddLengthDelimited(
      99, "a field from the future");
  request.GetReflection()->MutableUnknownFields(&request)->AddVarint(98, 7);
  const ReportFailuresResponse response = Send(request);
  EXPECT_EQ(response.accepted_size(), 1);
  EXPECT_EQ(queue_->backlog(), 1u);
  ReportFailuresRequest only_unknown;
  only_unknown.GetReflection()
      ->MutableUnknownFields(&only_unknown)
      ->AddLengthDelimited(99, "nothing else");
  const ReportFailuresResponse empty = Send(only_unknown);
  EXPECT_EQ(empty.accepted_size(), 0);
  EXPECT_EQ(empty.refused_size(), 0);
}

TEST_F(TrackerHeartbeatTest, ASilentPollerGetsOnePointAcrossStreams) {
  Start(100);
  // Two streams (a reconnect) of the same poller.
  ReportFailuresRequest request;
  *request.mutable_heartbeat() = Heartbeat("p1", 1764000000, 0);
  Send(request);
  fake_clock_.Advance(absl::Seconds(2));
  Send(request);
  // An old producer, without heartbeats, is never watched.
  ReportFailuresRequest old;
  *old.add_failures() = Failure(1);
  Send(old);
  ASSERT_EQ(queue_->backlog(), 1u);

  fake_clock_.Advance(absl::Milliseconds(2999));
  service_->CheckLiveness();
  EXPECT_EQ(Metric("qfp_tracker_pollers_silent_total"), 0);
  fake_clock_.Advance(absl::Milliseconds(1));
  service_->CheckLiveness();
  service_->CheckLiveness();
  EXPECT_EQ(Metric("qfp_tracker_pollers_silent_total"), 1);
  ASSERT_TRUE(WaitUntil([&] { return queue_->backlog() == 2u; }));
  fake_clock_.Advance(absl::Minutes(10));
  service_->CheckLiveness();
  EXPECT_EQ(Metric("qfp_tracker_pollers_silent_total"), 1);
  EXPECT_EQ(queue_->backlog(), 2u);
}

TEST_F(TrackerHeartbeatTest, MissedHeartbeatsZeroWatchesNoOne) {
  config_.missed_heartbeats = 0;
  Start(100);
  ReportFailuresRequest request;
  *request.mutable_heartbeat() = Heartbeat("p1", 1764000000, 0);
  Send(request);
  fake_clock_.Advance(absl::Hours(1));
  service_->CheckLiveness();
  EXPECT_EQ(Metric("qfp_tracker_pollers_silent_total"), 0);
  EXPECT_EQ(queue_->backlog(), 0u);
}

}  // namespace
}  // namespace qfp::tracker
