// SPDX-License-Identifier: GPL-2.0
/*
 * hv_shim_blk.c: the block-layer half of the shim, for the VMBus disk
 * driver (rust/drivers/storage). The kernel crate's block::mq in 7.3 gives
 * a driver its requests (Operations, TagSet, Request) but nothing to read
 * from one, no way to end one with an error, and a disk builder that sets
 * only the block sizes. What a real disk needs beyond that is here, each
 * function wrapped once in safe Rust in rust/block.rs:
 *
 *   hvg_rq_describe    blk_rq_pos, blk_rq_bytes, req_op, the FUA flag and
 *                      blk_mq_unique_tag are inlines and macros
 *   hvg_rq_pfns        rq_for_each_segment is a macro; the PFNs of a
 *                      request's pages, as one VMBus GPA range
 *   hvg_rq_end         ends a request with an error (the crate has only
 *                      Request::end_ok), by errno as the crate maps them
 *   hvg_disk_add/_del  a gendisk with the limits the host reported: max
 *                      transfer, the page-gap boundary one GPA range needs,
 *                      discard, write cache and FUA, read-only; and a
 *                      block_device_operations with this module as owner
 *
 * Nothing here keeps state: the disk belongs to its Rust owner.
 */
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/module.h>

#include "hv_shim.h"

void hvg_rq_describe(struct request *rq, struct hvg_rq *out)
{
	out->sector = blk_rq_pos(rq);
	out->bytes = blk_rq_bytes(rq);
	out->unique_tag = blk_mq_unique_tag(rq);
	out->fua = !!(rq->cmd_flags & REQ_FUA);
	switch (req_op(rq)) {
	case REQ_OP_READ:
		out->op = HVG_OP_READ;
		break;
	case REQ_OP_WRITE:
		out->op = HVG_OP_WRITE;
		break;
	case REQ_OP_FLUSH:
		out->op = HVG_OP_FLUSH;
		break;
	case REQ_OP_DISCARD:
		out->op = HVG_OP_DISCARD;
		break;
	default:
		out->op = HVG_OP_OTHER;
		break;
	}
}

/*
 * The frames of @rq's data as one GPA range: every 4 KiB page once, in
 * order, and in *@offset where the data starts in the first. The queue's
 * virt_boundary_mask (PAGE_SIZE - 1) makes every segment but the first
 * start a page and every one but the last end one, so the pages are whole
 * in between; a request that is not so (the limits not applied) is
 * -EINVAL rather than a range that moves the wrong bytes. -E2BIG past
 * @max pages. Returns the number of pages.
 */
int hvg_rq_pfns(struct request *rq, u64 *pfns, unsigned int max, u32 *offset)
{
	struct req_iterator iter;
	struct bio_vec bv;
	unsigned int n = 0;
	unsigned int end = 0;

	*offset = 0;
	rq_for_each_segment(bv, rq, iter) {
		u64 pfn = page_to_pfn(bv.bv_page);

		/* Single-page segments: bv_offset + bv_len <= PAGE_SIZE. */
		if (n && pfn == pfns[n - 1] && bv.bv_offset == end) {
			end += bv.bv_len;
			continue;
		}
		if (n && (end != PAGE_SIZE || bv.bv_offset != 0))
			return -EINVAL;
		if (n == max)
			return -E2BIG;
		if (!n)
			*offset = bv.bv_offset;
		pfns[n++] = pfn;
		end = bv.bv_offset + bv.bv_len;
	}
	return n;
}

/* Ends @rq with the block status of @err (0 or a negative errno). */
void hvg_rq_end(struct request *rq, int err)
{
	blk_mq_end_request(rq, errno_to_blk_status(err));
}

static const struct block_device_operations hvg_disk_fops = {
	.owner = THIS_MODULE,
};

struct gendisk *hvg_disk_add(struct blk_mq_tag_set *set,
			     const struct hvg_disk_params *p, void *queuedata)
{
	struct queue_limits lim = {
		.logical_block_size = p->logical_block_size,
		.physical_block_size = p->physical_block_size,
		.io_min = p->physical_block_size,
		.max_hw_sectors = p->max_hw_sectors,
		.max_segments = p->max_segments,
		.virt_boundary_mask = PAGE_SIZE - 1,
		.max_hw_discard_sectors = p->max_discard_sectors,
		.max_discard_segments = 1,
		.discard_granularity = p->discard_granularity,
	};
	struct gendisk *disk;
	int err;

	if (p->write_cache)
		lim.features |= BLK_FEAT_WRITE_CACHE;
	if (p->write_cache && p->fua)
		lim.features |= BLK_FEAT_FUA;
	disk = blk_mq_alloc_disk(set, &lim, queuedata);
	if (IS_ERR(disk))
		return disk;
	disk->fops = &hvg_disk_fops;
	strscpy(disk->disk_name, p->name, sizeof(disk->disk_name));
	set_capacity(disk, p->capacity_sectors);
	set_disk_ro(disk, p->read_only);
	err = add_disk(disk);
	if (err) {
		put_disk(disk);
		return ERR_PTR(err);
	}
	return disk;
}

void hvg_disk_del(struct gendisk *disk)
{
	del_gendisk(disk);
	put_disk(disk);
}
