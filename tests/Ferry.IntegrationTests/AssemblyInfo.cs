// Every test boots real VMs under QEMU; on a small machine they would only slow each other down.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
