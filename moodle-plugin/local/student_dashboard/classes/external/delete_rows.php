<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\external;

use core_external\external_api;
use core_external\external_function_parameters;
use core_external\external_multiple_structure;
use core_external\external_single_structure;
use core_external\external_value;
use core_external\external_warnings;
use local_student_dashboard\local\repository;
use local_student_dashboard\local\row_types;
use local_student_dashboard\local\sync_clock;

/**
 * Base of the delete_* functions: delete rows of one type by Zoho id; unknown ids are a no-op.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
abstract class delete_rows extends external_api {

    /**
     * The row type this function deletes.
     *
     * @return string One of row_types::types().
     */
    abstract protected static function row_type(): string;

    /**
     * Parameters: the Zoho ids.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'zoho_ids' => new external_multiple_structure(
                new external_value(PARAM_ALPHANUMEXT, 'Zoho id'),
                'The Zoho ids of the rows to delete, at most ' . row_types::MAX_BATCH
            ),
        ]);
    }

    /**
     * Delete the rows.
     *
     * @param array $zohoids The Zoho ids.
     * @return array See execute_returns().
     */
    public static function execute(array $zohoids): array {
        $params = self::validate_parameters(self::execute_parameters(), ['zoho_ids' => $zohoids]);
        $context = \context_system::instance();
        self::validate_context($context);
        require_capability('local/student_dashboard:manage', $context);
        sync_clock::touch();
        structures::require_batch_size(count($params['zoho_ids']));

        return [
            'deleted' => repository::delete(static::row_type(), $params['zoho_ids']),
            'warnings' => [],
        ];
    }

    /**
     * Returns: how many rows were deleted.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'deleted' => new external_value(PARAM_INT, 'Rows deleted'),
            'warnings' => new external_warnings(),
        ]);
    }
}
