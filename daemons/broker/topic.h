/*
 * topic.h - the broker's subscription trie and retained-message store.
 *
 * A topic_tree_t maps MQTT 3.1.1 topic filters to subscribers and exact topic
 * names to retained messages. It is safe for concurrent use from every
 * worker: many threads match at once (readers scale), subscribe/unsubscribe
 * and retain_set take the writer side. It does not validate topic syntax
 * (the codec's mqtt_topic_filter_valid / mqtt_topic_name_valid do that) and
 * it knows nothing about sessions or QoS delivery: subscribers and retained
 * messages are opaque pointers owned by the caller.
 *
 * None of these functions yields; they may block the calling thread briefly
 * on the tree's lock.
 */
#ifndef CORO_BROKER_TOPIC_H
#define CORO_BROKER_TOPIC_H

#include <stddef.h>
#include <stdint.h>

typedef struct topic_tree topic_tree_t;

/* NULL/ENOMEM on failure. */
topic_tree_t *topic_tree_new(void);

/* Frees the tree and every node; calls free_retained(msg) (if not NULL) for
 * each retained message still stored. No other thread may use t meanwhile. */
void topic_tree_free(topic_tree_t *t, void (*free_retained)(void *msg));

/* sub is an opaque subscriber pointer; (sub, filter) is unique: a second
 * subscribe replaces the qos. Returns 1 new, 0 replaced, -1 ENOMEM. */
int topic_subscribe(topic_tree_t *t, const char *filter, size_t len, void *sub, uint8_t qos);

/* 0, or -1/ENOENT when (sub, filter) is not subscribed. Nodes left empty are
 * freed. */
int topic_unsubscribe(topic_tree_t *t, const char *filter, size_t len, void *sub);

/* fn(sub, qos, arg) once per matching (sub, filter): a sub matching through
 * several filters is reported once per filter (the caller keeps the highest
 * qos). '$'-topics are not matched by a leading '+' or '#' (MQTT-4.7.2-1).
 * Does not allocate; many workers match at once while others subscribe.
 * fn runs with the tree's read lock held: it must be quick (enqueue only)
 * and must not call any topic_* function on the same tree. */
void topic_match(topic_tree_t *t, const char *topic, size_t len,
                 void (*fn)(void *sub, uint8_t qos, void *arg), void *arg);

/* Retained: set msg for topic (msg NULL clears); returns the previous msg
 * (the caller releases it), NULL if there was none. On ENOMEM returns msg
 * itself (nothing stored; errno ENOMEM) so the caller can tell and release
 * it. */
void *topic_retain_set(topic_tree_t *t, const char *topic, size_t len, void *msg);

/* fn(msg, arg) for each retained msg whose topic matches filter (wildcards
 * allowed in the filter; the same '$' rule as topic_match). fn runs under
 * the tree's read lock: it must be quick (take a reference) and must not
 * call back into the tree. */
void topic_retain_match(topic_tree_t *t, const char *filter, size_t len,
                        void (*fn)(void *msg, void *arg), void *arg);

/* fn(msg, arg) for every retained message (for snapshots); same locking
 * rules as topic_retain_match. */
void topic_retain_foreach(topic_tree_t *t, void (*fn)(void *msg, void *arg), void *arg);

/* Number of (sub, filter) pairs / retained messages currently stored. */
size_t topic_subscription_count(topic_tree_t *t);
size_t topic_retained_count(topic_tree_t *t);

#endif
