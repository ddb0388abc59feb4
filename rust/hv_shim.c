// SPDX-License-Identifier: GPL-2.0
/*
 * hv_shim.c: the few kernel facilities hv_guest needs that the Rust `kernel`
 * crate of 7.3 does not bind (safe MSR access, a module-owned interrupt
 * vector pinned to one CPU, CPU hotplug states, cross-CPU calls, the PFN of a
 * module text page, a page's linear address, and the orderly poweroff and
 * reboot that bindgen does not see). Each function is a thin,
 * documented wrapper; every one of them is wrapped in safe Rust at once, in
 * rust/shim.rs, and nothing else in the module calls them.
 *
 * Nothing here keeps state.
 */
#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/irqdomain.h>
#include <linux/mm.h>
#include <linux/reboot.h>
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
 * Registers a dynamic CPU hotplug state in the AP online section: @online
 * runs on each CPU that is or comes online, @offline on each CPU before it
 * goes down, both on that CPU, in process context. Returns the state number
 * or a negative errno (after @offline ran on CPUs already set up).
 */
int hvg_cpuhp_setup(const char *name, int (*online)(unsigned int),
		    int (*offline)(unsigned int))
{
	return cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, name, online, offline);
}

/* Removes a state from hvg_cpuhp_setup(), running @offline on every CPU. */
void hvg_cpuhp_remove(int state)
{
	cpuhp_remove_state(state);
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
