//! The exporter's only unsafe code: librdkafka admin calls the safe `rdkafka` crate does not
//! wrap (ListConsumerGroups, DescribeConsumerGroups, ListConsumerGroupOffsets, ListOffsets),
//! made on ONE client handle. librdkafka batches ListOffsets per partition leader and takes
//! one group per OffsetFetch, so a cycle costs a request per broker plus one per group.
//!
//! Every call follows the same shape: build inputs, submit with our own result queue, poll
//! that queue for the expected result events, copy everything out into owned Rust values
//! before the event is destroyed. Pointers never leave this module.
//!
//! The handle is a `BaseConsumer` without `group.id`: a consumer-type handle reports every
//! request type in its statistics (a producer-type one, like rdkafka's AdminClient, never
//! reports OffsetFetch), which is how `surge_kafka_requests_total` counts real requests.

#![allow(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString, c_void};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Deserialize;

use crate::sync::lock;

/// Which offset ListOffsets asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
}

/// (topic, partition) → offset, or the broker's error for that partition.
pub type PartitionOffsets = HashMap<(String, i32), Result<i64, String>>;

/// One partition of a group's OffsetFetch answer; `offset` is `None` when nothing is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub topic: String,
    pub partition: i32,
    pub offset: Option<i64>,
}

/// A group as ListConsumerGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group: String,
    pub state: String,
}

/// A group as DescribeConsumerGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    /// Per-group error (e.g. the coordinator refused); state and members are then unknown.
    pub error: Option<String>,
    pub state: String,
    pub members: usize,
    /// Topic → partitions assigned to some member.
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// Topic layout from metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// Receives librdkafka statistics (request counts) and routes its logs to `tracing`.
#[derive(Default)]
pub struct HandleContext {
    /// API name → requests sent, summed over brokers, from the latest statistics.
    requests: Mutex<BTreeMap<String, i64>>,
}

#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    brokers: HashMap<String, BrokerStats>,
}

#[derive(Deserialize)]
struct BrokerStats {
    #[serde(default)]
    req: HashMap<String, i64>,
}

impl ClientContext for HandleContext {
    fn stats_raw(&self, statistics: &[u8]) {
        // Only the request counters are read; the rest of the JSON is skipped unparsed.
        match serde_json::from_slice::<Stats>(statistics) {
            Ok(stats) => {
                let mut totals = BTreeMap::new();
                for broker in stats.brokers.values() {
                    for (api, count) in &broker.req {
                        *totals.entry(api.clone()).or_insert(0) += count;
                    }
                }
                *lock(&self.requests) = totals;
            }
            Err(error) => tracing::debug!(%error, "unreadable librdkafka statistics"),
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // Connection churn is reported through target errors; librdkafka's own lines are detail.
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::warn!(fac, "librdkafka: {message}")
            }
            _ => tracing::debug!(fac, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, "librdkafka: {reason}");
    }
}

impl ConsumerContext for HandleContext {}

/// Our result queue.
struct Queue(*mut rd::rd_kafka_queue_t);

// SAFETY: librdkafka queues are thread-safe; the pointer is only used through its API.
unsafe impl Send for Queue {}
unsafe impl Sync for Queue {}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_queue_new and destroyed exactly once, here.
        unsafe { rd::rd_kafka_queue_destroy(self.0) }
    }
}

/// An event polled from our queue, destroyed on drop.
struct Event(*mut rd::rd_kafka_event_t);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: non-null event returned by rd_kafka_queue_poll, destroyed exactly once.
        unsafe { rd::rd_kafka_event_destroy(self.0) }
    }
}

impl Event {
    fn kind(&self) -> i32 {
        // SAFETY: valid event pointer (see Drop).
        unsafe { rd::rd_kafka_event_type(self.0) }
    }

    fn opaque(&self) -> usize {
        // SAFETY: valid event; the opaque is an integer tag we set, never dereferenced.
        unsafe { rd::rd_kafka_event_opaque(self.0) as usize }
    }

    /// The request-level error, if the whole request failed.
    fn error(&self) -> Option<String> {
        // SAFETY: valid event; the error string lives as long as the event and is copied.
        unsafe {
            if rd::rd_kafka_event_error(self.0)
                == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                return None;
            }
            Some(cstr(rd::rd_kafka_event_error_string(self.0)))
        }
    }
}

/// Owned admin options, destroyed on drop.
struct Options(*mut rd::rd_kafka_AdminOptions_t);

impl Drop for Options {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_AdminOptions_new, destroyed exactly once.
        unsafe { rd::rd_kafka_AdminOptions_destroy(self.0) }
    }
}

/// Copy a C string (NULL → empty).
///
/// # Safety
/// `ptr` must be NULL or a valid NUL-terminated string for the duration of the call.
unsafe fn cstr(ptr: *const std::os::raw::c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// Copy an `rd_kafka_error_t` (NULL → None).
///
/// # Safety
/// `error` must be NULL or valid for the duration of the call.
unsafe fn error_of(error: *const rd::rd_kafka_error_t) -> Option<String> {
    if error.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    Some(unsafe { cstr(rd::rd_kafka_error_string(error)) })
}

/// Copy the elements of a topic-partition list: (topic, partition, offset, error).
///
/// # Safety
/// `list` must be NULL or a valid list for the duration of the call.
unsafe fn partitions_of(
    list: *const rd::rd_kafka_topic_partition_list_t,
) -> Vec<(String, i32, i64, Option<String>)> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: guaranteed by the caller; `elems` holds `cnt` initialised elements.
    unsafe {
        let list = &*list;
        let count = usize::try_from(list.cnt).unwrap_or(0);
        if count == 0 || list.elems.is_null() {
            return Vec::new();
        }
        std::slice::from_raw_parts(list.elems, count)
            .iter()
            .map(|e| {
                let error = (e.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
                    .then(|| cstr(rd::rd_kafka_err2str(e.err)));
                (cstr(e.topic), e.partition, e.offset, error)
            })
            .collect()
    }
}

fn state_name(state: rd::rd_kafka_consumer_group_state_t) -> String {
    // SAFETY: returns a static string for every enum value.
    unsafe { cstr(rd::rd_kafka_consumer_group_state_name(state)) }
}

/// One librdkafka handle used for all of a cluster's offset requests.
pub struct AdminHandle {
    // Declared first so it is destroyed before the client it belongs to.
    queue: Queue,
    consumer: BaseConsumer<HandleContext>,
    /// Admin-level timeout, kept longer than the socket timeout (see `new`).
    request_timeout: Duration,
    /// Tags this cycle's requests, so a late answer from an earlier cycle is ignored.
    cycle: std::sync::atomic::AtomicUsize,
}

impl AdminHandle {
    /// Create the handle from librdkafka properties (`bootstrap.servers`, security, ...).
    ///
    /// Timeouts: librdkafka 2.12 asserts (`rd_kafka_enq_once_del_source_return`) when a
    /// coordinator request's admin timeout fires and the broker connection then dies with
    /// the request still queued. So the admin timeout is kept well above `socket.timeout.ms`:
    /// the socket always fails a request first. Cycles do not wait that long — they stop at
    /// their own deadline and ignore answers that arrive later (see `begin_cycle`).
    pub fn new(
        properties: &BTreeMap<String, String>,
        cycle_timeout: Duration,
    ) -> Result<Self, String> {
        let mut config = ClientConfig::new();
        for (key, value) in properties {
            config.set(key, value);
        }
        let socket_timeout = match properties
            .get("socket.timeout.ms")
            .and_then(|v| v.parse().ok())
        {
            Some(ms) => Duration::from_millis(ms),
            None => {
                let t = (cycle_timeout * 3).clamp(Duration::from_secs(10), Duration::from_secs(60));
                config.set("socket.timeout.ms", t.as_millis().to_string());
                t
            }
        };
        // Request counters come from statistics; once a second is cheap (no toppars here).
        config.set("statistics.interval.ms", "1000");
        // KIP-714 client telemetry would add requests of its own to every cycle.
        if !properties.contains_key("enable.metrics.push") {
            config.set("enable.metrics.push", "false");
        }
        config.set_log_level(RDKafkaLogLevel::Warning);
        let consumer: BaseConsumer<HandleContext> = config
            .create_with_context(HandleContext::default())
            .map_err(|e| format!("creating Kafka client: {e}"))?;
        // SAFETY: the client pointer is valid while `consumer` lives, and the queue is
        // destroyed before it (field order of AdminHandle).
        let queue = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        if queue.is_null() {
            return Err("librdkafka could not create a queue".into());
        }
        Ok(AdminHandle {
            queue: Queue(queue),
            consumer,
            request_timeout: socket_timeout * 2 + Duration::from_secs(10),
            cycle: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Start a new cycle: answers to earlier cycles' requests will be dropped when they arrive.
    pub fn begin_cycle(&self) {
        self.cycle
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Opaque tag for request `index` of the current cycle.
    fn tag(&self, index: usize) -> usize {
        (self.cycle.load(std::sync::atomic::Ordering::Relaxed) << 8) | (index & 0xff)
    }

    fn is_current(&self, tag: usize) -> bool {
        tag >> 8 == self.tag(0) >> 8
    }

    /// Serve librdkafka's main queue: delivers statistics and logs. Call once per cycle.
    pub fn poll_main(&self) {
        // rdkafka's poll returns after each consumed callback event when the timeout is zero,
        // so poll as many times as events are waiting (statistics arrive every second).
        // SAFETY: valid client; the main-queue reference is released right away.
        let pending = unsafe {
            let main = rd::rd_kafka_queue_get_main(self.consumer.client().native_ptr());
            if main.is_null() {
                0
            } else {
                let n = rd::rd_kafka_queue_length(main);
                rd::rd_kafka_queue_destroy(main);
                n
            }
        };
        for _ in 0..pending.min(100_000) {
            let _ = self.consumer.poll(Duration::ZERO);
        }
    }

    /// API name → requests sent so far (as of the latest statistics, at most a second old).
    pub fn requests(&self) -> BTreeMap<String, i64> {
        lock(&self.consumer.context().requests).clone()
    }

    /// Topics and their partitions (one Metadata request).
    pub fn metadata(&self, timeout: Duration) -> Result<Vec<TopicLayout>, String> {
        let metadata = self
            .consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| format!("Metadata: {e}"))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| TopicLayout {
                topic: t.name().to_string(),
                partitions: t.partitions().iter().map(|p| p.id()).collect(),
            })
            .collect())
    }

    fn options(&self, api: rd::rd_kafka_admin_op_t, index: usize) -> Result<Options, String> {
        let timeout_ms = self.request_timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        let tag = self.tag(index);
        // SAFETY: valid client pointer; the options are owned by the returned guard.
        unsafe {
            let options = Options(rd::rd_kafka_AdminOptions_new(
                self.consumer.client().native_ptr(),
                api,
            ));
            if options.0.is_null() {
                return Err("librdkafka could not create admin options".into());
            }
            let mut errstr = [0 as std::os::raw::c_char; 256];
            let err = rd::rd_kafka_AdminOptions_set_request_timeout(
                options.0,
                timeout_ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(cstr(errstr.as_ptr()));
            }
            rd::rd_kafka_AdminOptions_set_opaque(options.0, tag as *mut c_void);
            Ok(options)
        }
    }

    /// Poll our queue until `expected` events of `kind` arrived or the deadline passed.
    fn collect_events(
        &self,
        kind: i32,
        expected: usize,
        deadline: Instant,
    ) -> Result<Vec<Event>, String> {
        let (events, missing) = self.collect_some_events(kind, expected, deadline);
        match missing {
            0 => Ok(events),
            n => Err(format!("timed out waiting for {n} of {expected} answers")),
        }
    }

    /// Like `collect_events`, but keeps what arrived: (events, how many are missing).
    fn collect_some_events(
        &self,
        kind: i32,
        expected: usize,
        deadline: Instant,
    ) -> (Vec<Event>, usize) {
        let mut events = Vec::with_capacity(expected);
        while events.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let wait_ms = left.as_millis().clamp(1, 200) as i32;
            // SAFETY: valid queue; a non-null event is owned by the Event guard.
            let event = unsafe { rd::rd_kafka_queue_poll(self.queue.0, wait_ms) };
            if event.is_null() {
                continue;
            }
            let event = Event(event);
            // Answers to an earlier cycle (it gave up waiting) are dropped here.
            if event.kind() == kind && self.is_current(event.opaque()) {
                events.push(event);
            }
        }
        let missing = expected - events.len();
        (events, missing)
    }

    /// Offsets of many partitions for each spec, concurrently: librdkafka sends one
    /// ListOffsets request per partition leader per spec.
    pub fn list_offsets(
        &self,
        partitions: &[(String, i32)],
        specs: &[OffsetSpec],
        deadline: Instant,
    ) -> Result<Vec<PartitionOffsets>, String> {
        if partitions.is_empty() {
            return Ok(specs.iter().map(|_| PartitionOffsets::new()).collect());
        }
        for (tag, spec) in specs.iter().enumerate() {
            let mut list = TopicPartitionList::with_capacity(partitions.len());
            let offset = match spec {
                OffsetSpec::Earliest => Offset::Beginning,
                OffsetSpec::Latest => Offset::End,
            };
            for (topic, partition) in partitions {
                list.add_partition_offset(topic, *partition, offset)
                    .map_err(|e| format!("ListOffsets input: {e}"))?;
            }
            let options =
                self.options(rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTOFFSETS, tag)?;
            // SAFETY: valid client, list, options and queue; librdkafka copies the list and
            // the options, so both may be dropped after the call.
            unsafe {
                rd::rd_kafka_ListOffsets(
                    self.consumer.client().native_ptr(),
                    list.ptr(),
                    options.0,
                    self.queue.0,
                );
            }
        }
        let events =
            self.collect_events(rd::RD_KAFKA_EVENT_LISTOFFSETS_RESULT, specs.len(), deadline)?;
        let mut out: Vec<PartitionOffsets> =
            specs.iter().map(|_| PartitionOffsets::new()).collect();
        for event in &events {
            if let Some(error) = event.error() {
                return Err(format!("ListOffsets: {error}"));
            }
            let Some(slot) = out.get_mut(event.opaque() & 0xff) else {
                continue;
            };
            // SAFETY: valid event of the right type; every pointer read lives as long as it.
            unsafe {
                let result = rd::rd_kafka_event_ListOffsets_result(event.0);
                let mut count = 0usize;
                let infos = rd::rd_kafka_ListOffsets_result_infos(result, &mut count);
                if infos.is_null() {
                    continue;
                }
                for &info in std::slice::from_raw_parts(infos, count) {
                    let tp = &*rd::rd_kafka_ListOffsetsResultInfo_topic_partition(info);
                    let value = if tp.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                        Ok(tp.offset)
                    } else {
                        Err(cstr(rd::rd_kafka_err2str(tp.err)))
                    };
                    slot.insert((cstr(tp.topic), tp.partition), value);
                }
            }
        }
        Ok(out)
    }

    /// Committed offsets of each group (one OffsetFetch per group, all in flight at once).
    /// A failing group gets its own error; the others are unaffected.
    pub fn committed_offsets(
        &self,
        groups: &[String],
        deadline: Instant,
    ) -> HashMap<String, Result<Vec<Committed>, String>> {
        let mut out = HashMap::with_capacity(groups.len());
        let mut submitted = 0;
        for group in groups {
            let Ok(name) = CString::new(group.as_str()) else {
                out.insert(group.clone(), Err("group name contains NUL".into()));
                continue;
            };
            let options = match self.options(
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
                0,
            ) {
                Ok(o) => o,
                Err(e) => {
                    out.insert(group.clone(), Err(e));
                    continue;
                }
            };
            // SAFETY: valid name, options, client and queue. A NULL partition list asks for
            // every committed partition. librdkafka copies the request object, which we
            // destroy right after the call.
            unsafe {
                let mut request =
                    rd::rd_kafka_ListConsumerGroupOffsets_new(name.as_ptr(), std::ptr::null());
                rd::rd_kafka_ListConsumerGroupOffsets(
                    self.consumer.client().native_ptr(),
                    &mut request,
                    1,
                    options.0,
                    self.queue.0,
                );
                rd::rd_kafka_ListConsumerGroupOffsets_destroy(request);
            }
            submitted += 1;
        }
        // Groups that do not answer in time get a timeout; the others keep their answers.
        let (events, _) = self.collect_some_events(
            rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
            submitted,
            deadline,
        );
        for event in &events {
            let request_error = event.error();
            // SAFETY: valid event of the right type; pointers live as long as the event.
            unsafe {
                let result = rd::rd_kafka_event_ListConsumerGroupOffsets_result(event.0);
                let mut count = 0usize;
                let results =
                    rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut count);
                if results.is_null() {
                    continue;
                }
                for &group_result in std::slice::from_raw_parts(results, count) {
                    let group = cstr(rd::rd_kafka_group_result_name(group_result));
                    let value = match error_of(rd::rd_kafka_group_result_error(group_result))
                        .or(request_error.clone())
                    {
                        Some(error) => Err(error),
                        None => Ok(partitions_of(rd::rd_kafka_group_result_partitions(
                            group_result,
                        ))
                        .into_iter()
                        .filter(|(_, _, _, error)| error.is_none())
                        .map(|(topic, partition, offset, _)| Committed {
                            topic,
                            partition,
                            // -1001 (RD_KAFKA_OFFSET_INVALID): nothing committed.
                            offset: (offset >= 0).then_some(offset),
                        })
                        .collect()),
                    };
                    out.insert(group, value);
                }
            }
        }
        for group in groups {
            out.entry(group.clone())
                .or_insert_with(|| Err("OffsetFetch: no answer before the deadline".into()));
        }
        out
    }

    /// Every consumer group the cluster knows (one ListGroups per broker).
    pub fn list_groups(&self, deadline: Instant) -> Result<Vec<GroupListing>, String> {
        let options = self.options(
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS,
            0,
        )?;
        // SAFETY: valid client, options and queue.
        unsafe {
            rd::rd_kafka_ListConsumerGroups(
                self.consumer.client().native_ptr(),
                options.0,
                self.queue.0,
            );
        }
        let events =
            self.collect_events(rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, 1, deadline)?;
        let mut out = Vec::new();
        for event in &events {
            if let Some(error) = event.error() {
                return Err(format!("ListGroups: {error}"));
            }
            // SAFETY: valid event of the right type; pointers live as long as the event.
            unsafe {
                let result = rd::rd_kafka_event_ListConsumerGroups_result(event.0);
                let mut count = 0usize;
                let valid = rd::rd_kafka_ListConsumerGroups_result_valid(result, &mut count);
                if !valid.is_null() {
                    for &listing in std::slice::from_raw_parts(valid, count) {
                        out.push(GroupListing {
                            group: cstr(rd::rd_kafka_ConsumerGroupListing_group_id(listing)),
                            state: state_name(rd::rd_kafka_ConsumerGroupListing_state(listing)),
                        });
                    }
                }
                let mut errors = 0usize;
                let failed = rd::rd_kafka_ListConsumerGroups_result_errors(result, &mut errors);
                if out.is_empty() && !failed.is_null() && errors > 0 {
                    let first = error_of(*failed).unwrap_or_default();
                    return Err(format!("ListGroups: {first}"));
                }
            }
        }
        Ok(out)
    }

    /// State, members and assignments of `groups`. On a broker that cannot describe groups
    /// the whole call fails; callers treat that as "state unknown" per group.
    pub fn describe_groups(
        &self,
        groups: &[String],
        deadline: Instant,
    ) -> Result<Vec<GroupDescription>, String> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<CString> = groups
            .iter()
            .filter_map(|g| CString::new(g.as_str()).ok())
            .collect();
        let mut pointers: Vec<*const std::os::raw::c_char> =
            names.iter().map(|n| n.as_ptr()).collect();
        let options = self.options(
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
            0,
        )?;
        // SAFETY: `pointers` and `names` outlive the call; librdkafka copies the names.
        unsafe {
            rd::rd_kafka_DescribeConsumerGroups(
                self.consumer.client().native_ptr(),
                pointers.as_mut_ptr(),
                pointers.len(),
                options.0,
                self.queue.0,
            );
        }
        let events = self.collect_events(
            rd::RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT,
            1,
            deadline,
        )?;
        let mut out = Vec::new();
        for event in &events {
            if let Some(error) = event.error() {
                return Err(format!("DescribeGroups: {error}"));
            }
            // SAFETY: valid event of the right type; pointers live as long as the event.
            unsafe {
                let result = rd::rd_kafka_event_DescribeConsumerGroups_result(event.0);
                let mut count = 0usize;
                let descriptions =
                    rd::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count);
                if descriptions.is_null() {
                    continue;
                }
                for &d in std::slice::from_raw_parts(descriptions, count) {
                    let members = rd::rd_kafka_ConsumerGroupDescription_member_count(d);
                    let mut assignment: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for i in 0..members {
                        let member = rd::rd_kafka_ConsumerGroupDescription_member(d, i);
                        if member.is_null() {
                            continue;
                        }
                        let assigned = rd::rd_kafka_MemberDescription_assignment(member);
                        if assigned.is_null() {
                            continue;
                        }
                        for (topic, partition, _, _) in
                            partitions_of(rd::rd_kafka_MemberAssignment_partitions(assigned))
                        {
                            assignment.entry(topic).or_default().push(partition);
                        }
                    }
                    for partitions in assignment.values_mut() {
                        partitions.sort_unstable();
                        partitions.dedup();
                    }
                    out.push(GroupDescription {
                        group: cstr(rd::rd_kafka_ConsumerGroupDescription_group_id(d)),
                        error: error_of(rd::rd_kafka_ConsumerGroupDescription_error(d)),
                        state: state_name(rd::rd_kafka_ConsumerGroupDescription_state(d)),
                        members,
                        assignment,
                    });
                }
            }
        }
        Ok(out)
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        // Drain results still in flight so their events are freed with the queue.
        // SAFETY: valid queue; events are destroyed by the guard.
        unsafe {
            loop {
                let event = rd::rd_kafka_queue_poll(self.queue.0, 0);
                if event.is_null() {
                    break;
                }
                drop(Event(event));
            }
        }
    }
}
