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
use local_student_dashboard\local\repository;
use local_student_dashboard\local\row_types;
use local_student_dashboard\local\sync_clock;

/**
 * Base of the get_* functions: one page of the rows of one type, ordered by id, for the sync's snapshot.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
abstract class get_rows extends external_api {

    /**
     * The row type this function reads.
     *
     * @return string One of row_types::types().
     */
    abstract protected static function row_type(): string;

    /**
     * Parameters: the page.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'limitfrom' => new external_value(PARAM_INT, 'Rows to skip', VALUE_DEFAULT, 0),
            'limitnumber' => new external_value(PARAM_INT, 'Rows to return, 0 for all (at most ' . row_types::MAX_PAGE . ')',
                VALUE_DEFAULT, 0),
        ]);
    }

    /**
     * Read one page.
     *
     * @param int $limitfrom Rows to skip.
     * @param int $limitnumber Rows to return.
     * @return array See execute_returns().
     */
    public static function execute(int $limitfrom = 0, int $limitnumber = 0): array {
        $params = self::validate_parameters(self::execute_parameters(), [
            'limitfrom' => $limitfrom,
            'limitnumber' => $limitnumber,
        ]);
        if ($params['limitfrom'] < 0 || $params['limitnumber'] < 0) {
            throw new \invalid_parameter_exception('limitfrom and limitnumber must not be negative');
        }
        $context = \context_system::instance();
        self::validate_context($context);
        require_capability('local/student_dashboard:manage', $context);
        sync_clock::touch();

        return repository::get(static::row_type(), $params['limitfrom'], $params['limitnumber']);
    }

    /**
     * Returns: the rows and the table's total.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        $type = static::row_type();
        $fields = ['id' => new external_value(PARAM_INT, 'Row id')];
        foreach (row_types::fields($type) as $name => $field) {
            $fields[$name] = structures::output_value($field, $name);
        }
        $fields['timemodified'] = new external_value(PARAM_INT, 'Last created or updated');
        return new external_single_structure([
            'rows' => new external_multiple_structure(new external_single_structure($fields), 'Rows ordered by id'),
            'total' => new external_value(PARAM_INT, 'Rows in the table'),
        ]);
    }
}
