/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C half of hv_guest.ko, called only from rust/shim.rs, whose `extern`
 * block must match these prototypes. See hv_shim.c for each function.
 */
#ifndef HV_GUEST_SHIM_H
#define HV_GUEST_SHIM_H

#include <linux/interrupt.h>
#include <linux/types.h>

struct page;

int hvg_rdmsr(u32 msr, u64 *val);
int hvg_wrmsr(u32 msr, u64 val);
int hvg_cpu_vector_alloc(unsigned int cpu, irq_handler_t handler,
			 const char *name, void *dev_id, unsigned int *virq,
			 unsigned int *vector);
void hvg_cpu_vector_free(unsigned int virq, void *dev_id);
void hvg_synchronize_irq(unsigned int virq);
int hvg_cpuhp_multi_setup(const char *name);
void *hvg_cpuhp_add_instance(int state, int (*online)(unsigned int, void *),
			     int (*offline)(unsigned int, void *), void *ctx);
void hvg_cpuhp_remove_instance(int state, void *instance);
void hvg_cpuhp_multi_remove(int state);
int hvg_on_cpu(unsigned int cpu, void (*func)(void *), void *info);
unsigned long hvg_vmalloc_to_pfn(const void *addr);
void *hvg_page_address(struct page *page);
u64 hvg_page_to_phys(struct page *page);
unsigned int hvg_smp_processor_id(void);
unsigned long hvg_local_irq_save(void);
void hvg_local_irq_restore(unsigned long flags);
bool hvg_cpu_online(unsigned int cpu);
unsigned int hvg_num_online_cpus(void);
u32 hvg_linux_version_code(void);
void hvg_orderly_poweroff(void);
void hvg_orderly_reboot(void);
void hvg_copy_shared(void *dst, const void *src, size_t n);


/* Block helpers (hv_shim_blk.c). */
struct request;
struct gendisk;
struct blk_mq_tag_set;

enum hvg_op {
	HVG_OP_READ = 0,
	HVG_OP_WRITE = 1,
	HVG_OP_FLUSH = 2,
	HVG_OP_DISCARD = 3,
	HVG_OP_OTHER = 4,
};

struct hvg_rq {
	u64 sector;
	u32 bytes;
	u32 unique_tag;
	u8 op;
	bool fua;
};

struct hvg_disk_params {
	const char *name;
	u64 capacity_sectors;
	u32 logical_block_size;
	u32 physical_block_size;
	u32 max_hw_sectors;
	u32 max_discard_sectors;
	u32 discard_granularity;
	u16 max_segments;
	bool write_cache;
	bool fua;
	bool read_only;
};

void hvg_rq_describe(struct request *rq, struct hvg_rq *out);
int hvg_rq_pfns(struct request *rq, u64 *pfns, unsigned int max, u32 *offset);
void hvg_rq_end(struct request *rq, int err);
struct gendisk *hvg_disk_add(struct blk_mq_tag_set *set,
			     const struct hvg_disk_params *p, void *queuedata);
void hvg_disk_del(struct gendisk *disk);

/* hv_shim_vsock.c: the AF_VSOCK transport (rust/vsock.rs). */
struct sock;
struct msghdr;
struct vsock_sock;

/*
 * What hvg_vsock_claim found: see there. @sndbuf and @rcvbuf are the
 * socket buffers the connection's rings are sized from: the connecting
 * socket's, or for a host's connection the listener's.
 */
struct hvg_vsock_claim {
	struct sock *parent;
	struct sock *conn;
	void *trans;
	int sndbuf;
	int rcvbuf;
};

int hvg_vsock_register(void *ctx);
void hvg_vsock_unregister(void);
int hvg_vsock_claim(bool accept, u32 local_port, u32 remote_port,
		    struct hvg_vsock_claim *c);
void hvg_vsock_claim_done(struct hvg_vsock_claim *c);
void hvg_vsock_claim_fail(struct hvg_vsock_claim *c);
void hvg_vsock_peer_gone(struct sock *sk);
bool hvg_vsock_refused(u32 local_port, u32 remote_port);
void hvg_vsock_wake(struct sock *sk);
void hvg_vsock_peer_fin(struct vsock_sock *vsk);
void hvg_vsock_reset(struct vsock_sock *vsk);
int hvg_msg_copy_to(struct msghdr *msg, const void *buf, size_t n);
int hvg_msg_copy_from(void *buf, struct msghdr *msg, size_t n);
void hvg_sock_hold(struct sock *sk);
void hvg_sock_put(struct sock *sk);

#endif /* HV_GUEST_SHIM_H */
