"""What training processes under torchrun exchange besides DistributedDataParallel's gradient
average: whole-batch rows for per-sample memories, sums, and one process's tensors for all.

Every function is the identity in one process, so the same code trains with one process or
with several. The loaders give every process batches of the same size (dataset.gpu.shard_order
pads an epoch to a multiple of the processes), so a gather needs no sizes exchanged first.
"""
import torch
import torch.distributed as dist


def active():
    """Whether this process is one of several (a process group is up)."""
    return dist.is_available() and dist.is_initialized()


def world_size():
    return dist.get_world_size() if active() else 1


def gather_rows(*tensors):
    """Each tensor's rows from every process, concatenated in rank order: the same tensors on
    every process. Detached: what is gathered updates memories, it is not differentiated."""
    if not active():
        return tuple(tensor.detach() for tensor in tensors)
    world = world_size()
    gathered = []
    for tensor in tensors:
        tensor = tensor.detach().contiguous()
        whole = tensor.new_empty((world * tensor.shape[0], *tensor.shape[1:]))
        dist.all_gather_single(whole, tensor)
        gathered.append(whole)
    return tuple(gathered)


def sum_across(tensor):
    """`tensor` summed over every process (a new tensor; the input is left alone)."""
    if not active():
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total


def data_parallel(module, device, sync_buffers=True):
    """`module` wrapped so that every process averages its gradients (DistributedDataParallel),
    `module` itself in one process. sync_buffers: every forward first copies the first
    process's buffers (BatchNorm statistics) to all; CTC's memories are kept equal by their
    own updates instead (helper.ctc)."""
    if not active():
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids, forward_sync_buffers=sync_buffers)


def copy_from_first(tensors):
    """Overwrite `tensors` in place with the first process's values."""
    if active():
        for tensor in tensors:
            dist.broadcast(tensor, src=0)
