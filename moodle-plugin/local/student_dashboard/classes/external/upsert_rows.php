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
 * Base of the upsert_* functions: create or update rows of one type, keyed by Zoho id.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
abstract class upsert_rows extends external_api {

    /**
     * The row type this function writes.
     *
     * @return string One of row_types::types().
     */
    abstract protected static function row_type(): string;

    /**
     * Parameters: one list named after the row type.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        $type = static::row_type();
        $fields = [];
        foreach (row_types::fields($type) as $name => $field) {
            $fields[$name] = structures::input_value($field, $name);
        }
        return new external_function_parameters([
            $type => new external_multiple_structure(
                new external_single_structure($fields, 'One ' . row_types::item($type)),
                'The rows to create or update, at most ' . row_types::MAX_BATCH
            ),
        ]);
    }

    /**
     * Create or update the rows.
     *
     * @param array $rows The rows.
     * @return array See execute_returns().
     */
    public static function execute(array $rows): array {
        $type = static::row_type();
        $params = self::validate_parameters(self::execute_parameters(), [$type => $rows]);
        $context = \context_system::instance();
        self::validate_context($context);
        require_capability('local/student_dashboard:manage', $context);
        sync_clock::touch();
        structures::require_batch_size(count($params[$type]));

        $result = repository::upsert($type, $params[$type]);
        $warnings = [];
        foreach ($result['warnings'] as $warning) {
            $warnings[] = [
                'item' => $warning['zoho_id'],
                'itemid' => $warning['index'],
                'warningcode' => $warning['warningcode'],
                'message' => get_string('warning:' . $warning['warningcode'], 'local_student_dashboard', (object) [
                    'field' => $warning['field'],
                    'value' => $warning['value'],
                ]),
            ];
        }
        $result['warnings'] = $warnings;
        return $result;
    }

    /**
     * Returns: counts, one result per applied row, warnings for the others.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'created' => new external_value(PARAM_INT, 'Rows created'),
            'updated' => new external_value(PARAM_INT, 'Rows updated'),
            'unchanged' => new external_value(PARAM_INT, 'Rows already up to date'),
            'results' => new external_multiple_structure(new external_single_structure([
                'zoho_id' => new external_value(PARAM_ALPHANUMEXT, 'Zoho id'),
                'id' => new external_value(PARAM_INT, 'Row id in the plugin table'),
                'status' => new external_value(PARAM_ALPHA, 'created, updated or unchanged'),
            ]), 'One result per applied row, in request order'),
            'warnings' => new external_warnings('Zoho id of the row as sent', 'Position of the row in the request, from 0',
                'Why the row was not applied'),
        ]);
    }
}
