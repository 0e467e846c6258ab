/* One-line passthrough wrappers; see shim.h. */
#include "shim.h"

uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts) { return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts); }
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts) { return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts); }
struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
void shim_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count) { return rte_pktmbuf_alloc_bulk(mp, mbufs, count); }
void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
int shim_rte_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail) { return rte_pktmbuf_chain(head, tail); }
uint16_t shim_rte_pktmbuf_data_room_size(struct rte_mempool *mp) { return rte_pktmbuf_data_room_size(mp); }
int shim_rte_errno(void) { return rte_errno; }
unsigned int shim_rte_lcore_id(void) { return rte_lcore_id(); }

uint16_t shim_mbuf_data_len(const struct rte_mbuf *m) { return m->data_len; }
uint32_t shim_mbuf_pkt_len(const struct rte_mbuf *m) { return m->pkt_len; }
uint16_t shim_mbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }
struct rte_mbuf *shim_mbuf_next(const struct rte_mbuf *m) { return m->next; }
struct rte_mempool *shim_mbuf_pool(const struct rte_mbuf *m) { return m->pool; }

const uint64_t shim_RTE_ETH_RSS_IP = RTE_ETH_RSS_IP;
const uint64_t shim_RTE_ETH_RSS_TCP = RTE_ETH_RSS_TCP;
const uint64_t shim_RTE_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
const uint64_t shim_RTE_ETH_RX_OFFLOAD_SCATTER = RTE_ETH_RX_OFFLOAD_SCATTER;
const uint64_t shim_RTE_ETH_TX_OFFLOAD_MULTI_SEGS = RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
