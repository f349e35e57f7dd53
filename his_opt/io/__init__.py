"""Reading and validating the user-written inputs: users, edge servers, public-prompt candidates,
precomputed similarity matrices. This layer reads files; it builds no optimisation instance.

Every problem raises ``InputError`` with one line naming the file, row and field.
"""

from ._candidates import load_candidates
from ._inputs import SolveInputs, check_consistency
from ._servers import (
    CYCLE_PROFILE,
    SERVER_COLUMNS,
    ServerRecord,
    default_servers,
    load_servers,
    resolve_profile,
    server_summary,
)
from ._similarity_table import SimilarityTable, load_similarity_table
from ._table import file_sha256, read_text
from ._users import SAFE_ID, USER_COLUMNS, USER_INPUT_COLUMNS, load_users

__all__ = [
    "CYCLE_PROFILE",
    "SAFE_ID",
    "SERVER_COLUMNS",
    "ServerRecord",
    "SimilarityTable",
    "USER_COLUMNS",
    "USER_INPUT_COLUMNS",
    "SolveInputs",
    "check_consistency",
    "default_servers",
    "file_sha256",
    "load_candidates",
    "load_servers",
    "load_similarity_table",
    "load_users",
    "read_text",
    "resolve_profile",
    "server_summary",
]
