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

/**
 * Admin settings of the student dashboard.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

if ($hassiteconfig) {
    $settings = new admin_settingpage('local_student_dashboard', new lang_string('pluginname', 'local_student_dashboard'));
    $ADMIN->add('localplugins', $settings);

    if ($ADMIN->fulltree) {
        // Which sections students see (domain setting student_dashboard.visibility).
        $settings->add(new admin_setting_heading('local_student_dashboard/visibility',
            new lang_string('settings:visibility', 'local_student_dashboard'),
            new lang_string('settings:visibility_desc', 'local_student_dashboard')));
        $sections = [
            'showprofile' => 1,
            'showacademics' => 1,
            'showfinance' => 1,
            'showremainingbalance' => 0,
            'showpayments' => 1,
            'showgrades' => 1,
        ];
        foreach ($sections as $name => $default) {
            $settings->add(new admin_setting_configcheckbox('local_student_dashboard/' . $name,
                new lang_string('settings:' . $name, 'local_student_dashboard'),
                new lang_string('settings:' . $name . '_desc', 'local_student_dashboard'), $default));
        }

        // How money is shown.
        $settings->add(new admin_setting_heading('local_student_dashboard/display',
            new lang_string('settings:display', 'local_student_dashboard'), ''));
        $settings->add(new admin_setting_configselect('local_student_dashboard/currencyformat',
            new lang_string('settings:currencyformat', 'local_student_dashboard'),
            new lang_string('settings:currencyformat_desc', 'local_student_dashboard'),
            'symbol', [
                'symbol' => new lang_string('settings:currencyformat_symbol', 'local_student_dashboard'),
                'code' => new lang_string('settings:currencyformat_code', 'local_student_dashboard'),
            ]));

        // Grade thresholds, the same as the sync's (percent of the grade range, inclusive).
        $settings->add(new admin_setting_heading('local_student_dashboard/thresholds',
            new lang_string('settings:thresholds', 'local_student_dashboard'),
            new lang_string('settings:thresholds_desc', 'local_student_dashboard')));
        $thresholds = ['thresholddistinction' => 70, 'thresholdmerit' => 60, 'thresholdpass' => 40];
        foreach ($thresholds as $name => $default) {
            $settings->add(new admin_setting_configtext('local_student_dashboard/' . $name,
                new lang_string('settings:' . $name, 'local_student_dashboard'), '', $default, PARAM_FLOAT, 6));
        }

        // Outbound events to the zmsync receiver.
        $settings->add(new admin_setting_heading('local_student_dashboard/events',
            new lang_string('settings:events', 'local_student_dashboard'),
            new lang_string('settings:events_desc', 'local_student_dashboard')));
        $settings->add(new admin_setting_configtext('local_student_dashboard/receiverurl',
            new lang_string('settings:receiverurl', 'local_student_dashboard'),
            new lang_string('settings:receiverurl_desc', 'local_student_dashboard'), '', PARAM_URL, 60));
        $settings->add(new admin_setting_configpasswordunmask('local_student_dashboard/hmacsecret',
            new lang_string('settings:hmacsecret', 'local_student_dashboard'),
            new lang_string('settings:hmacsecret_desc', 'local_student_dashboard'), ''));
        $settings->add(new admin_setting_configcheckbox('local_student_dashboard/skipsyncchanges',
            new lang_string('settings:skipsyncchanges', 'local_student_dashboard'),
            new lang_string('settings:skipsyncchanges_desc', 'local_student_dashboard'), 1));
    }
}
