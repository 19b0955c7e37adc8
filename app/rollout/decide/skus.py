"""VM sizes: the shape of a size name, and the sizes Azure ML's managed online endpoints support."""

from __future__ import annotations

import re

#: Azure ML's page "Managed online endpoints SKU list", which MANAGED_ONLINE_SKUS follows.
SKU_LIST_URL = "https://learn.microsoft.com/azure/machine-learning/reference-managed-online-endpoints-vm-sku-list"
#: An Azure VM size name as ARM spells it, e.g. ``Standard_DS3_v2`` or ``Standard_NC24ads_A100_v4``.
VM_SIZE_PATTERN = re.compile(r"^Standard_[A-Za-z0-9_]+$", re.IGNORECASE)

#: The VM sizes a managed online deployment accepts (``properties.instanceType``), lower-cased.
#: Source: "Managed online endpoints SKU list", Azure Machine Learning docs,
#: https://learn.microsoft.com/azure/machine-learning/reference-managed-online-endpoints-vm-sku-list
#: (MicrosoftDocs/azure-ai-docs articles/machine-learning/reference-managed-online-endpoints-vm-sku-list.md,
#: ms.date 10/18/2023). The dev kit's AML emulator enforces this very list;
#: keep it the only copy.
MANAGED_ONLINE_SKUS: frozenset[str] = frozenset(
    name.lower()
    for name in (
        *(f"Standard_D{n}as_v4" for n in (2, 4, 8, 16, 32, 48, 64, 96)),
        *(f"Standard_D{n}a_v4" for n in (2, 4, 8, 16, 32, 48, 64, 96)),
        *(f"Standard_DS{n}_v2" for n in (1, 2, 3, 4, 5)),
        *(f"Standard_E{n}s_v3" for n in (2, 4, 8, 16, 32, 48, 64)),
        *(f"Standard_F{n}s_v2" for n in (2, 4, 8, 16, 32, 48, 64, 72)),
        *(f"Standard_FX{n}mds" for n in (4, 12, 24, 36, 48)),
        *(f"Standard_L{n}as_v3" for n in (8, 16, 32, 48, 64, 80)),
        *(f"Standard_L{n}s_v2" for n in (8, 16, 32, 48, 64, 80)),
        *(f"Standard_L{n}s_v3" for n in (8, 16, 32, 48, 64, 80)),
        *(f"Standard_NC{n}ads_A100_v4" for n in (24, 48, 96)),
        *(f"Standard_NC{n}as_T4_v3" for n in (4, 8, 16, 64)),
        *(f"Standard_NC{n}s_v2" for n in (6, 12, 24)),
        *(f"Standard_NC{n}s_v3" for n in (6, 12, 24)),
        "Standard_NC40ads_H100_v5",
        "Standard_NC80adis_H100_v5",
        "Standard_ND96amsr_A100_v4",
        "Standard_ND96asr_v4",
        "Standard_ND40rs_v2",
        "Standard_ND96is_H100_v5",
        "Standard_ND96isr_H100_v5",
        *(f"Standard_NV{n}ads_A10_v5" for n in (6, 12, 18, 36, 72)),
        "Standard_NV36adms_A10_v5",
    )
)


def is_managed_online_sku(name: str) -> bool:
    """Can a managed online deployment run on VM size ``name``? (Case-insensitive, as ARM compares it.)"""
    return name.lower() in MANAGED_ONLINE_SKUS
