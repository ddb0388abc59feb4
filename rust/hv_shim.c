// SPDX-License-Identifier: GPL-2.0
/*
 * hv_shim.c: what hv_guest needs from the kernel that Rust cannot reach in
 * 7.3, either because the `kernel` crate has no abstraction for it and the
 * C side is a macro or an inline function bindgen does not see, or because
 * only C may do it. Every function is wrapped once in safe Rust in
 * rust/shim.rs and nothing else calls them. Why each is here:
 *
 *   hvg_rdmsr, hvg_wrmsr           rdmsrq_safe/wrmsrq_safe are inline (the
 *                                  exception table entry is the point)
 *   hvg_cpu_vector_alloc/_free,    an interrupt vector on one CPU with no
 *   hvg_synchronize_irq            device behind it: the x86 vector domain
 *                                  API, which has no Rust binding
 *   hvg_cpuhp_multi_setup/_remove, the multi-instance hotplug API is inline
 *   hvg_cpuhp_add/remove_instance  wrappers, and its callbacks get an
 *                                  hlist_node embedded in a C struct
 *   hvg_on_cpu                     smp_call_function_single with a Rust
 *                                  closure behind a C callback
 *   hvg_vmalloc_to_pfn             the PFN of a module text page (the
 *                                  hypercall page is vmalloc'd text)
 *   hvg_page_address,              page_address and page_to_phys are
 *   hvg_page_to_phys               macros
 *   hvg_smp_processor_id,          macros/inlines (irq flags, the current
 *   hvg_local_irq_save/_restore    CPU under disabled interrupts)
 *   hvg_cpu_online                 cpu_online is a macro (selftest build)
 *   hvg_num_online_cpus            num_online_cpus is an inline (how many
 *                                  queues a multi-channel device gets)
 *   hvg_linux_version_code         LINUX_VERSION_CODE, a macro (the guest
 *                                  OS ID carries it)
 *   hvg_orderly_poweroff/_reboot   not in the 7.3 bindings
 *   hvg_copy_shared                a memcpy of memory the host writes
 *                                  concurrently, which a Rust copy may not
 *                                  be (undefined behaviour in Rust's model)
 *
 * Nothing here keeps state of its own: a hotplug instance is allocated
 * here for its caller, who removes (and so frees) it.
 */
#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/irqdomain.h>
#include <linux/mm.h>
#include <linux/reboot.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/vmalloc.h>
#include <linux/version.h>
#include <asm/apic.h>
#include <asm/hw_irq.h>
#include <asm/irqdomain.h>
#include <asm/msr.h>

#include "hv_shim.h"

/* RDMSR that turns a #GP into -EIO instead of an oops. */
int hvg_rdmsr(u32 msr, u64 *val)
{
	return rdmsrq_safe(msr, val) ? -EIO : 0;
}

/* WRMSR that turns a #GP into -EIO instead of an oops. */
int hvg_wrmsr(u32 msr, u64 val)
{
	return wrmsrq_safe(msr, val) ? -EIO : 0;
}

/*
 * Allocates an interrupt with its own vector on @cpu and installs @handler.
 *
 * The irq comes from the exported x86 vector domain with a non-managed
 * affinity of exactly @cpu (without it, activation may place the vector on
 * another CPU), is marked per-CPU and never balanced (IRQ_PER_CPU |
 * IRQ_NO_BALANCING: nothing may move it, since the vector is programmed into
 * that CPU's SINT register), and is handled as an edge interrupt, whose
 * chip ack is the local APIC EOI. On success *@virq and *@vector are set.
 * Must be called in process context; @cpu must be online.
 */
int hvg_cpu_vector_alloc(unsigned int cpu, irq_handler_t handler,
			 const char *name, void *dev_id, unsigned int *virq,
			 unsigned int *vector)
{
	struct irq_affinity_desc affinity = { .is_managed = 0 };
	struct irq_alloc_info info = {};
	struct irq_data *data;
	struct irq_cfg *cfg;
	int irq, ret;

	cpumask_copy(&affinity.mask, cpumask_of(cpu));
	info.mask = cpumask_of(cpu);
	irq = __irq_domain_alloc_irqs(x86_vector_domain, -1, 1,
				      cpu_to_node(cpu), &info, false, &affinity);
	if (irq < 0)
		return irq;
	irq_set_status_flags(irq, IRQ_PER_CPU | IRQ_NO_BALANCING);
	__irq_set_handler(irq, handle_edge_irq, 0, NULL);
	ret = request_irq(irq, handler, IRQF_NOBALANCING, name, dev_id);
	if (ret)
		goto free;
	data = irq_get_irq_data(irq);
	cfg = data ? irqd_cfg(data) : NULL;
	/* The vector must be live on @cpu, or the SINT would point elsewhere. */
	if (!cfg || !cfg->vector ||
	    !cpumask_test_cpu(cpu, irq_data_get_effective_affinity_mask(data))) {
		ret = -EIO;
		free_irq(irq, dev_id);
		goto free;
	}
	*virq = irq;
	*vector = cfg->vector;
	return 0;
free:
	irq_domain_free_irqs(irq, 1);
	return ret;
}

/* Undoes hvg_cpu_vector_alloc(); waits for a running handler to finish. */
void hvg_cpu_vector_free(unsigned int virq, void *dev_id)
{
	free_irq(virq, dev_id);
	irq_domain_free_irqs(virq, 1);
}

/* Waits until no handler of @virq runs on any CPU. */
void hvg_synchronize_irq(unsigned int virq)
{
	synchronize_irq(virq);
}

/*
 * One instance of a multi-instance CPU hotplug state: the callbacks and the
 * context they get. The state's own callbacks (below) find it from the
 * hlist_node the hotplug core hands them.
 */
struct hvg_cpuhp_instance {
	struct hlist_node node;
	int (*online)(unsigned int cpu, void *ctx);
	int (*offline)(unsigned int cpu, void *ctx);
	void *ctx;
};

static int hvg_cpuhp_online(unsigned int cpu, struct hlist_node *node)
{
	struct hvg_cpuhp_instance *i = hlist_entry(node, struct hvg_cpuhp_instance, node);

	return i->online(cpu, i->ctx);
}

static int hvg_cpuhp_offline(unsigned int cpu, struct hlist_node *node)
{
	struct hvg_cpuhp_instance *i = hlist_entry(node, struct hvg_cpuhp_instance, node);

	return i->offline(cpu, i->ctx);
}

/*
 * Registers a dynamic multi-instance CPU hotplug state in the AP online
 * section, with no instance yet. Returns the state number or a negative
 * errno.
 */
int hvg_cpuhp_multi_setup(const char *name)
{
	return cpuhp_setup_state_multi(CPUHP_AP_ONLINE_DYN, name, hvg_cpuhp_online,
				       hvg_cpuhp_offline);
}

/*
 * Adds an instance to @state: @online(cpu, @ctx) runs on each CPU that is
 * or comes online, @offline(cpu, @ctx) on each CPU before it goes down (and
 * on every CPU when the instance is removed), on that CPU, in process
 * context. Returns the instance, or an ERR_PTR (after @offline ran on the
 * CPUs already set up).
 */
void *hvg_cpuhp_add_instance(int state, int (*online)(unsigned int, void *),
			     int (*offline)(unsigned int, void *), void *ctx)
{
	struct hvg_cpuhp_instance *i = kzalloc(sizeof(*i), GFP_KERNEL);
	int ret;

	if (!i)
		return ERR_PTR(-ENOMEM);
	i->online = online;
	i->offline = offline;
	i->ctx = ctx;
	ret = cpuhp_state_add_instance(state, &i->node);
	if (ret) {
		kfree(i);
		return ERR_PTR(ret);
	}
	return i;
}

/* Removes an instance from hvg_cpuhp_add_instance(), running @offline on every CPU. */
void hvg_cpuhp_remove_instance(int state, void *instance)
{
	struct hvg_cpuhp_instance *i = instance;

	cpuhp_state_remove_instance(state, &i->node);
	kfree(i);
}

/* Removes a state from hvg_cpuhp_multi_setup() (its instances gone first). */
void hvg_cpuhp_multi_remove(int state)
{
	cpuhp_remove_multi_state(state);
}

/* Runs @func(@info) on @cpu and waits for it; -ENXIO if @cpu is offline. */
int hvg_on_cpu(unsigned int cpu, void (*func)(void *), void *info)
{
	return smp_call_function_single(cpu, func, info, 1);
}

/* PFN of an address in module memory (vmalloc space), 0 if unmapped. */
unsigned long hvg_vmalloc_to_pfn(const void *addr)
{
	return vmalloc_to_pfn(addr);
}

/* Linear-map address of a lowmem page (every page on x86-64). */
void *hvg_page_address(struct page *page)
{
	return page_address(page);
}

/* Physical address of a page. */
u64 hvg_page_to_phys(struct page *page)
{
	return page_to_phys(page);
}

/* The CPU this runs on; the caller keeps preemption or interrupts off. */
unsigned int hvg_smp_processor_id(void)
{
	return smp_processor_id();
}

/* local_irq_save() for a guard in Rust; returns the flags to restore. */
unsigned long hvg_local_irq_save(void)
{
	unsigned long flags;

	local_irq_save(flags);
	return flags;
}

/* local_irq_restore() of flags from hvg_local_irq_save(). */
void hvg_local_irq_restore(unsigned long flags)
{
	local_irq_restore(flags);
}

/* Whether @cpu is online. */
bool hvg_cpu_online(unsigned int cpu)
{
	return cpu_online(cpu);
}

/* LINUX_VERSION_CODE of the kernel this was built for (for the OS ID). */
u32 hvg_linux_version_code(void)
{
	return LINUX_VERSION_CODE;
}

/*
 * Starts an orderly poweroff (runs the poweroff helper, then powers off)
 * from any context; the VMBus shutdown IC's request. Not in the Rust
 * bindings of 7.3.
 */
void hvg_orderly_poweroff(void)
{
	orderly_poweroff(true);
}

/* As hvg_orderly_poweroff(), for a restart request. */
void hvg_orderly_reboot(void)
{
	orderly_reboot();
}

/*
 * Copies @n bytes between this kernel's memory and memory the host shares
 * with it (SynIC message slots, channel rings), which the host may write
 * while the copy runs. A Rust copy of memory another agent writes
 * concurrently is undefined behaviour in Rust's model; a C memcpy of it is
 * what Linux's own Hyper-V drivers do with the same pages. The caller
 * checks whatever it copied, never the shared bytes themselves.
 */
void hvg_copy_shared(void *dst, const void *src, size_t n)
{
	memcpy(dst, src, n);
}

unsigned int hvg_num_online_cpus(void)
{
	return num_online_cpus();
}
