/* baton DPDK shim: the DPDK headers bindgen reads, plus one-line wrappers of
 * DPDK's static inline functions and macros (which have no symbol to link).
 * Passthrough only: no logic lives here. */
#ifndef BATON_SHIM_H
#define BATON_SHIM_H

#include <stdint.h>
#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_memzone.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>

uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned int count);
void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m);
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
int shim_rte_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);
uint16_t shim_rte_pktmbuf_data_room_size(struct rte_mempool *mp);
int shim_rte_errno(void);
unsigned int shim_rte_lcore_id(void);

/* Field accessors: struct rte_mbuf is opaque to Rust (its layout uses
 * anonymous unions and cache-line alignment markers). */
uint16_t shim_mbuf_data_len(const struct rte_mbuf *m);
uint32_t shim_mbuf_pkt_len(const struct rte_mbuf *m);
uint16_t shim_mbuf_nb_segs(const struct rte_mbuf *m);
struct rte_mbuf *shim_mbuf_next(const struct rte_mbuf *m);
struct rte_mempool *shim_mbuf_pool(const struct rte_mbuf *m);

/* Values of DPDK macros that bindgen cannot evaluate (RTE_BIT64(..)). */
extern const uint64_t shim_RTE_ETH_RSS_IP;
extern const uint64_t shim_RTE_ETH_RSS_TCP;
extern const uint64_t shim_RTE_ETH_RSS_UDP;
extern const uint64_t shim_RTE_ETH_RX_OFFLOAD_SCATTER;
extern const uint64_t shim_RTE_ETH_TX_OFFLOAD_MULTI_SEGS;

#endif
